"""``codejury bench training``: does self-training make the reranker pick better programs?

One run directory, in order (every part resumes when run again):

1. **cold start**: the first ``mutate_limit`` MBXP problems per language, canonical
   solutions and their failing mutants, into the store (skipped when it has rows);
2. **iterations** 1..K of ``codejury train iteration``, each starting its reward model
   from the previous iteration's registered version and its generator from the previous
   iteration's aligned one (iteration 0 is the untrained version ``v0``);
3. **a fixed evaluation set**: the first ``eval_problems`` MultiPL-E HumanEval problems
   per language (evaluation only: never written to the store), N samples each from the
   *demo generator* (the same candidates for every version, so only the reranker
   changes), run in the sandbox; kept in ``eval-candidates.jsonl``;
4. each version scores the evaluation candidates: reranked pass@1 next to random-pick
   and oracle pass@1.

Throughput comes from the iterations' own records: reward-model training pairs/s
(TRL's ``train_samples_per_second``) and PPO seconds per step and completions/s.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codejury.core.files import write_text_atomic
from codejury.core.settings import Settings
from codejury.evaluation.datasets import Dataset, find, load, task_order
from codejury.execution.backends import ExecutionBackend
from codejury.execution.factory import default_limits
from codejury.proto.v1 import domain_pb2
from codejury.reranking.bootstrap import ensure_stable
from codejury.reranking.factory import load_version
from codejury.reranking.registry import ModelRegistry
from codejury.training.coldstart import cold_start, mbxp_problems
from codejury.training.iteration import IterationConfig, IterationDeps, run_iteration
from codejury.training.metrics import oracle_pass_at_1, random_pass_at_1, reranked_pass_at_1
from codejury.training.scoring import score_fitting
from codejury.training.store import TrainingStore
from codejury.training.workdir import (
    is_complete,
    iteration_dir,
    read_jsonl,
    read_result,
)

Report = Callable[[str], None]  # a line of progress for the user
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class TrainingBenchPlan:
    languages: tuple[str, ...] = ("python",)
    iterations: int = 2
    mutate_limit: int = 60  # MBXP problems per language for the cold start
    mutate_per_problem: int = 4
    eval_problems: int = 16  # MultiPL-E HumanEval problems per language
    n: int = 8  # evaluation samples per problem
    backbone: str = "minilm"  # of v0


@dataclass(frozen=True)
class VersionScore:
    iteration: int
    version_id: str
    reranked_pass_at_1: float
    heldout_pass_at_1: float | None  # on the MBXP held-out split, from its manifest


@dataclass
class TrainingBenchResult:
    versions: list[VersionScore]
    random_pass_at_1: float
    oracle_pass_at_1: float
    eval_problems: int
    eval_candidates: int
    unscored: int  # evaluation candidates too long for the reward model (count as failing)
    throughput: list[dict[str, float]] = field(default_factory=list)  # one per iteration


def run_training_bench(
    settings: Settings,
    plan: TrainingBenchPlan,
    *,
    data_dir: Path,
    backend: Callable[[], contextlib.AbstractContextManager[ExecutionBackend]],
    report: Report,
    progress: Progress | None = None,
) -> TrainingBenchResult:
    registry = ModelRegistry(settings.run_dir / "reranking" / "registry")
    store = TrainingStore.from_settings(settings)
    versions = [(0, ensure_stable(registry, plan.backbone))]
    if not store.parts():
        report("cold start: mutating MBXP canonical solutions")
        mbxp = {n: mbxp_problems(data_dir, n, plan.mutate_limit) for n in plan.languages}
        cold_start(settings, mbxp, store, per_problem=plan.mutate_per_problem)
    deps = IterationDeps(settings, store, registry, backend, data_dir)
    for i in range(1, plan.iterations + 1):
        report(f"iteration {i}")
        config = IterationConfig.from_settings(
            settings, i, languages=plan.languages, base_version=versions[-1][1]
        )
        result = run_iteration(
            config, deps, on_step=lambda step, what: report(f"  {step}: {what}"), progress=progress
        )
        if result.version_id is None:  # unreachable without stop_after
            raise RuntimeError(f"iteration {i} registered no version")
        versions.append((i, result.version_id))
    report("evaluation candidates: sampling from the demo generator and running them")
    problems = _evaluation_set(settings, plan, data_dir, backend, progress)
    scores = []
    unscored = 0
    for i, version in versions:
        report(f"scoring with {version}")
        scored, missing = _score(registry, version, settings, problems)
        unscored = missing
        heldout = registry.get(version).metrics.get("heldout_pass_at_1")
        first = iteration_dir(settings.run_dir, 1) / "reward"
        if i == 0 and is_complete(first):  # v0 before any training, as iteration 1 measured it
            heldout = read_result(first)["metrics"]["base_heldout_pass_at_1"]
        scores.append(VersionScore(i, version, reranked_pass_at_1(scored), heldout))
    labels = [[(0.0, bool(c["passed"])) for c in p["candidates"]] for p in problems]
    return TrainingBenchResult(
        versions=scores,
        random_pass_at_1=random_pass_at_1(labels),
        oracle_pass_at_1=oracle_pass_at_1(labels),
        eval_problems=len(problems),
        eval_candidates=sum(len(p["candidates"]) for p in problems),
        unscored=unscored,
        throughput=[_throughput(settings, i) for i, _ in versions if i > 0],
    )


def _evaluation_set(
    settings: Settings,
    plan: TrainingBenchPlan,
    data_dir: Path,
    backend: Callable[[], contextlib.AbstractContextManager[ExecutionBackend]],
    progress: Progress | None,
) -> list[dict[str, Any]]:
    """[{language, problem_id, prompt, candidates: [{completion, passed}]}], cached."""
    path = settings.run_dir / "bench-training" / "eval-candidates.jsonl"
    if path.is_file():
        return read_jsonl(path)
    from codejury.generation.factory import make_generator

    problems = []
    for language in plan.languages:
        rows = sorted(
            (p for p in load(find(data_dir, Dataset.MULTIPL_E, language)) if p.problem.tests),
            key=task_order,
        )
        problems += rows[: plan.eval_problems]
    generator = make_generator(settings.generation)
    limits = default_limits(settings)
    records = []
    try:
        with backend() as runner:
            for k, p in enumerate(problems):
                candidates = generator.generate(
                    [p.problem],
                    plan.n,
                    domain_pb2.SamplingParams(),
                    request_key=f"bench-training-{k}",
                    seed_if_unset=7919 + k,
                )
                results = runner.execute_batch(p.problem, candidates, limits)
                records.append(
                    {
                        "language": p.problem.language,
                        "problem_id": p.problem.problem_id,
                        "prompt": p.problem.prompt,
                        "candidates": [
                            {"completion": c.completion, "passed": r.status == domain_pb2.PASSED}
                            for c, r in zip(candidates, results, strict=True)
                        ],
                    }
                )
                if progress:
                    progress(k + 1, len(problems))
    finally:
        generator.backend.close()
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return records


def _score(
    registry: ModelRegistry,
    version: str,
    settings: Settings,
    problems: Sequence[dict[str, Any]],
) -> tuple[list[list[tuple[float, bool]]], int]:
    """(score, passed) per candidate; a candidate too long to score ranks last."""
    model = load_version(settings, registry, version)
    out = []
    unscored = 0
    for p in problems:
        programs = [c["completion"] for c in p["candidates"]]
        scores = score_fitting(model, p["prompt"], programs)
        unscored += sum(s is None for s in scores)
        out.append(
            [
                (float("-inf") if s is None else s, bool(c["passed"]))
                for s, c in zip(scores, p["candidates"], strict=True)
            ]
        )
    return out, unscored


def _throughput(settings: Settings, iteration: int) -> dict[str, float]:
    it = iteration_dir(settings.run_dir, iteration)
    out: dict[str, float] = {"iteration": float(iteration)}
    for step in ("reward", "retrain"):
        if is_complete(it / step):
            m = read_result(it / step)["metrics"]
            out[f"{step}_pairs_per_s"] = m["train_pairs_per_s"]
            out[f"{step}_train_pairs"] = m["train_pairs"]
    if is_complete(it / "ppo"):
        lines = read_jsonl(it / "ppo" / "metrics.jsonl")
        seconds = sum(line["seconds"] for line in lines)
        out["ppo_steps"] = float(len(lines))
        out["ppo_seconds_per_step"] = seconds / len(lines)
        out["ppo_completions_per_s"] = (
            len(lines) * settings.training.ppo_batch_size / seconds if seconds else 0.0
        )
        out["ppo_reward_first"] = lines[0]["reward_mean"]
        out["ppo_reward_last"] = lines[-1]["reward_mean"]
    return out
