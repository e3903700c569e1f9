"""One self-training iteration (RewardRanker, ECIR 2025), resumable step by step.

    coldstart an empty store only: MBXP canonical solutions and their failing mutants,
              labelled in the sandbox (``coldstart``), so the first reward model has pairs
    reward    snapshot the store; train the reward model from the parent version
    ppo       align the generator to that reward model (PPO, resumable checkpoints)
    sample    N samples per training problem from the aligned generator
    execute   run them in the sandbox (through the Celery workers)
    mine      score them with the step-1 reward model; store every labelled sample,
              the hard negatives marked (``mining``)
    retrain   snapshot again (now with the mined rows); train from the parent again
    register  the result becomes a new reranker version with its manifest

Each step writes its own folder under ``<run_dir>/training/iterations/<I>/`` whole or not
at all (``workdir``) and is skipped when it is already there, so a killed iteration
resumes at the step it was in (PPO inside its step from its last checkpoint). Everything
an iteration decides once is recorded in its step's ``result.json`` and read back on a
resume: the parent version, the snapshots, the new version's id.

Checked before anything is written: the languages run here, the parent version and the
policy exist, and MBXP has training problems for the languages (MultiPL-E, HumanEval
and HumanEval-X are refused by the loader).
"""

from __future__ import annotations

import contextlib
import gc
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codejury.core.errors import FailedPreconditionError, InvalidArgumentError
from codejury.core.logging import get_logger
from codejury.core.settings import Settings, with_group
from codejury.evaluation.datasets import BenchmarkProblem
from codejury.execution.backends import ExecutionBackend
from codejury.execution.factory import default_limits
from codejury.execution.languages import require_available
from codejury.execution.sandbox import Limits
from codejury.proto.v1 import domain_pb2
from codejury.reranking.factory import scoring_config
from codejury.reranking.model import RewardModel
from codejury.reranking.registry import ModelRegistry
from codejury.training.catalog import mbxp_prompts
from codejury.training.coldstart import mbxp_problems, mutation_limits, seed_empty_store
from codejury.training.errors import (
    CheckpointNotFoundError,
    NoPairsError,
    ToolchainUnavailableError,
    TrainingDataError,
)
from codejury.training.mining import MINED_HARD_NEGATIVE, ScoredSample, mine_hard_negatives
from codejury.training.pairs import PairConfig, build_pairs, is_heldout
from codejury.training.policy import base_policy_dir, check_policy_dir
from codejury.training.ppo_config import PPOConfig
from codejury.training.records import LABEL_STATUSES, LabelledCandidate, Source
from codejury.training.registration import new_version_id, register_reward_model
from codejury.training.reward import RewardTrainingConfig, train_reward_model
from codejury.training.scoring import score_fitting
from codejury.training.store import Snapshot, TrainingStore
from codejury.training.workdir import (
    is_complete,
    iteration_dir,
    read_jsonl,
    read_result,
    write_jsonl,
    write_result,
    writing_step,
)

log = get_logger(__name__)

STEPS = ("coldstart", "reward", "ppo", "sample", "execute", "mine", "retrain", "register")

StepEvent = Callable[[str, str], None]  # (step, "start" | "skip" | "done")
Progress = Callable[[int, int | None], None]  # (done, total) within the current step


@dataclass(frozen=True)
class IterationConfig:
    """What one iteration does; ``from_settings`` fills it from ``training.*``."""

    iteration: int
    languages: tuple[str, ...]
    problems_per_language: int | None
    samples_per_problem: int
    mining_quantile: float
    ppo: PPOConfig
    reward: RewardTrainingConfig
    pairs: PairConfig
    base_version: str = "stable"  # the registry version the reward models start from
    policy: Path | None = None  # None: the previous iteration's aligned policy, or the base
    cold_start_problems: int = 0  # per language, on an empty store; 0: refuse an empty store
    cold_start_mutants: int = 3
    mark_canary: bool = False
    stop_after: str | None = None  # a step name: stop once it is complete

    def __post_init__(self) -> None:
        if self.iteration < 1:
            raise TrainingDataError(
                f"iteration {self.iteration}: iterations count from 1 (iteration 0 is the "
                "untrained starting point)"
            )
        if not self.languages:
            raise TrainingDataError("languages is empty: name at least one MBXP language")
        if self.stop_after is not None and self.stop_after not in STEPS:
            raise TrainingDataError(
                f"stop_after {self.stop_after!r}: use one of {', '.join(STEPS)}"
            )

    @classmethod
    def from_settings(cls, settings: Settings, iteration: int, **overrides: Any) -> IterationConfig:
        t = settings.training
        values: dict[str, Any] = {
            "iteration": iteration,
            "languages": tuple(x.strip() for x in t.languages.split(",") if x.strip()),
            "problems_per_language": t.problems_per_language,
            "samples_per_problem": t.samples_per_problem,
            "mining_quantile": t.mining_quantile,
            "cold_start_problems": t.cold_start_problems,
            "cold_start_mutants": t.cold_start_mutants,
            "ppo": PPOConfig(
                steps=t.ppo_steps,
                batch_size=t.ppo_batch_size,
                mini_batch_size=t.ppo_mini_batch_size,
                learning_rate=t.ppo_learning_rate,
                max_new_tokens=t.ppo_max_new_tokens,
                init_kl_coef=t.ppo_init_kl_coef,
                seed=t.seed + iteration,
                device=t.device,
                precision=t.precision,
                save_every=max(1, t.ppo_steps // 4),
            ),
            "reward": RewardTrainingConfig.from_settings(settings),
            "pairs": PairConfig.from_settings(settings),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class IterationResult:
    iteration: int
    directory: Path
    version_id: str | None  # None when stopped before ``register``
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class IterationDeps:
    """The side-effecting parts an iteration uses, built by the entry point."""

    settings: Settings
    store: TrainingStore
    registry: ModelRegistry
    backend: Callable[[], contextlib.AbstractContextManager[ExecutionBackend]]  # opened for
    # the execute step only (a worker it starts runs no longer than that step)
    data_dir: Path


def training_problems(
    data_dir: Path, config: IterationConfig, pairs: PairConfig
) -> list[BenchmarkProblem]:
    """MBXP problems with tests, outside the held-out split, the first N per language."""
    out: list[BenchmarkProblem] = []
    for language in config.languages:
        found = [
            p
            for p in mbxp_problems(data_dir, language, None)
            if not is_heldout(
                p.problem.problem_id, fraction=pairs.heldout_fraction, seed=pairs.split_seed
            )
        ]
        out.extend(found[: config.problems_per_language])
    if not out:
        raise TrainingDataError(
            f"no MBXP training problems for {', '.join(config.languages)} under {data_dir}: "
            "check training.languages and the data folder"
        )
    return out


def check_languages(languages: Sequence[str]) -> None:
    for name in languages:
        try:
            require_available(name)
        except InvalidArgumentError as exc:
            raise TrainingDataError(f"training.languages: {exc}") from exc
        except FailedPreconditionError as exc:
            raise ToolchainUnavailableError(
                f"training.languages names {name!r}, which cannot run here ({exc}); samples "
                "of it could not be labelled: install its toolchain (`codejury exec "
                "--list-languages` says how) or leave it out"
            ) from exc


def run_iteration(
    config: IterationConfig,
    deps: IterationDeps,
    *,
    on_step: StepEvent | None = None,
    progress: Progress | None = None,
) -> IterationResult:
    """Run (or resume) one iteration; see the module docstring."""
    return _Iteration(config, deps, on_step or (lambda *_: None), progress).run()


class _Iteration:
    def __init__(
        self,
        config: IterationConfig,
        deps: IterationDeps,
        on_step: StepEvent,
        progress: Progress | None,
    ) -> None:
        self.config = config
        self.deps = deps
        self.settings = deps.settings
        self.on_step = on_step
        self.progress = progress
        self.dir = iteration_dir(deps.settings.run_dir, config.iteration)

    # -- driver ----------------------------------------------------------------------

    def run(self) -> IterationResult:
        c = self.config
        check_languages(c.languages)
        parent = self._parent()
        policy = self._policy()
        problems = training_problems(self.deps.data_dir, c, c.pairs)
        self.dir.mkdir(parents=True, exist_ok=True)
        steps: dict[str, Callable[[Path], dict[str, Any]]] = {
            "coldstart": self._cold_start,
            "reward": lambda out: self._reward(out, parent),
            "ppo": lambda out: self._ppo(out, policy, problems),
            "sample": lambda out: self._sample(out, problems),
            "execute": lambda out: self._execute(out, problems),
            "mine": lambda out: self._mine(out, problems),
            "retrain": self._retrain,
            "register": self._register,
        }
        ran: list[str] = []
        skipped: list[str] = []
        for name in STEPS:
            step_dir = self.dir / name
            if is_complete(step_dir):
                skipped.append(name)
                self.on_step(name, "skip")
            else:
                self.on_step(name, "start")
                log.info("iteration.step", iteration=c.iteration, step=name)
                with writing_step(step_dir) as out:
                    write_result(out, steps[name](out))
                ran.append(name)
                self.on_step(name, "done")
                gc.collect()  # the step's models go before the next step loads its own
            if name == c.stop_after:
                break
        if is_complete(self.dir / "ppo"):
            shutil.rmtree(self.dir / "ppo.work", ignore_errors=True)
        registered = is_complete(self.dir / "register")
        version = read_result(self.dir / "register")["version_id"] if registered else None
        return IterationResult(
            c.iteration, self.dir, version, tuple(ran), tuple(skipped), self._metrics()
        )

    def _parent(self) -> str:
        reward = self.dir / "reward"
        if is_complete(reward):  # decided when the iteration started
            parent: str = read_result(reward)["parent"]
        else:
            parent = self.deps.registry.resolve(self.config.base_version)
        self.deps.registry.model_dir(parent)  # the files are there
        return parent

    def _policy(self) -> Path:
        c = self.config
        if c.policy is not None:
            return check_policy_dir(c.policy, field="--policy")
        if c.iteration == 1:
            return base_policy_dir(self.settings)
        previous = iteration_dir(self.settings.run_dir, c.iteration - 1) / "ppo" / "policy"
        if not (previous / "config.json").is_file():
            raise CheckpointNotFoundError(
                f"iteration {c.iteration} starts from iteration {c.iteration - 1}'s aligned "
                f"generator, but {previous} holds none: run iteration {c.iteration - 1} first, "
                "or pass --policy (a model directory) to start from another generator"
            )
        return previous

    # -- steps -----------------------------------------------------------------------

    def _cold_start(self, out: Path) -> dict[str, Any]:
        """Seed an empty store, as ``codejury train mutate`` would: without it the first
        reward model has no pairs and the run fails (a fresh run directory, a new cluster)."""
        c, progress = self.config, self.progress
        reports = seed_empty_store(
            self.settings,
            self.deps.store,
            self.deps.data_dir,
            languages=c.languages,
            problems_per_language=c.cold_start_problems,
            mutants=c.cold_start_mutants,
            progress=None if progress is None else lambda _language, done: progress(done, None),
        )
        if reports is None:
            return {"seeded": False}
        return {
            "seeded": True,
            "by_language": {
                r.language: {
                    "problems": r.problems,
                    "canonical_passed": r.canonical_passed,
                    "negatives": r.kept,
                }
                for r in reports
            },
        }

    def _reward(self, out: Path, parent: str) -> dict[str, Any]:
        snapshot = self.deps.store.snapshot()
        metrics = self._train_reward(snapshot, parent, out / "model")
        return {"parent": parent, "snapshot_id": snapshot.snapshot_id, "metrics": metrics}

    def _ppo(self, out: Path, policy: Path, problems: Sequence[BenchmarkProblem]) -> dict[str, Any]:
        from transformers import AutoTokenizer

        from codejury.training.policy import export_policy, policy_prompts, reward_function
        from codejury.training.ppo import METRICS_FILE, train_ppo

        work = self.dir / "ppo.work"  # PPO's own checkpoints: a killed PPO resumes there
        scorer = self._reward_model()
        prompts = policy_prompts(AutoTokenizer.from_pretrained(policy), problems, self.settings)
        result = train_ppo(
            policy,
            work,
            [p.text for p in prompts],
            reward_function(prompts, scorer),
            self.config.ppo,
            progress=self.progress,
        )
        export_policy(result.checkpoint, policy, out / "policy")
        shutil.copy2(work / METRICS_FILE, out / METRICS_FILE)
        lines = read_jsonl(out / METRICS_FILE)
        return {
            "policy_source": str(policy),
            "steps": len(lines),
            "reward_mean_first": lines[0]["reward_mean"],
            "reward_mean_last": lines[-1]["reward_mean"],
            "kl_last": lines[-1]["kl"],
        }

    def _sample(self, out: Path, problems: Sequence[BenchmarkProblem]) -> dict[str, Any]:
        from codejury.generation.factory import make_generator

        c = self.config
        aligned = with_group(
            self.settings,
            "generation",
            model=str(self.dir / "ppo" / "policy"),
            gguf_file=None,
            model_name=f"policy-i{c.iteration}",
            cache_dir=None,
        )
        generator = make_generator(aligned.generation)
        records: list[dict[str, Any]] = []
        try:
            for k, p in enumerate(problems):
                candidates = generator.generate(
                    [p.problem],
                    c.samples_per_problem,
                    domain_pb2.SamplingParams(),
                    request_key=f"i{c.iteration}-{p.problem.language}-{k}",
                    seed_if_unset=1_000_003 * c.iteration + k,
                )
                records.extend(
                    {
                        "language": p.problem.language,
                        "problem_id": p.problem.problem_id,
                        "candidate_id": cand.candidate_id,
                        "index": cand.index,
                        "completion": cand.completion,
                    }
                    for cand in candidates
                )
                if self.progress:
                    self.progress(k + 1, len(problems))
        finally:
            generator.backend.close()
        count = write_jsonl(out / "samples.jsonl", records)
        return {"problems": len(problems), "samples": count}

    def _execute(self, out: Path, problems: Sequence[BenchmarkProblem]) -> dict[str, Any]:
        samples = read_jsonl(self.dir / "sample" / "samples.jsonl")
        by_problem = _group_samples(samples)
        limits = mutation_limits(
            default_limits(self.settings), self.settings.training.mutation_timeout_s
        )
        records = []
        statuses: dict[str, int] = {}
        with self.deps.backend() as backend:
            for k, p in enumerate(problems):
                group = by_problem.get((p.problem.language, p.problem.problem_id), [])
                for candidate_id, status in _execute(backend, p, group, limits):
                    statuses[status] = statuses.get(status, 0) + 1
                    records.append({"candidate_id": candidate_id, "status": status})
                if self.progress:
                    self.progress(k + 1, len(problems))
        write_jsonl(out / "results.jsonl", records)
        return {"executed": len(records), "statuses": dict(sorted(statuses.items()))}

    def _mine(self, out: Path, problems: Sequence[BenchmarkProblem]) -> dict[str, Any]:
        c = self.config
        samples = read_jsonl(self.dir / "sample" / "samples.jsonl")
        statuses = {
            r["candidate_id"]: r["status"]
            for r in read_jsonl(self.dir / "execute" / "results.jsonl")
        }
        prompts = {(p.problem.language, p.problem.problem_id): p.problem.prompt for p in problems}
        labelled = [s for s in samples if statuses.get(s["candidate_id"]) in LABEL_STATUSES]
        scorer = self._reward_model()
        scores: dict[str, float | None] = {}
        for key, group in _group_samples(labelled).items():
            for s, score in zip(
                group,
                score_fitting(scorer, prompts[key], [s["completion"] for s in group]),
                strict=True,
            ):
                scores[s["candidate_id"]] = score
        scored = [
            ScoredSample(
                s["language"],
                s["problem_id"],
                s["candidate_id"],
                statuses[s["candidate_id"]] == "PASSED",
                scores[s["candidate_id"]],
            )
            for s in labelled
        ]
        reference = self._reference_scores(scorer, scored, prompts)
        hard, report = mine_hard_negatives(scored, reference, quantile=c.mining_quantile)
        score_version = f"iteration-{c.iteration}-reward"
        rows = [
            LabelledCandidate(
                problem_id=s["problem_id"],
                language=s["language"],
                program=s["completion"],
                status=statuses[s["candidate_id"]],
                source=Source.GENERATOR,
                iteration=c.iteration,
                prompt=prompts[(s["language"], s["problem_id"])],
                dataset="mbxp",
                score=scores[s["candidate_id"]],
                score_version=score_version if scores[s["candidate_id"]] is not None else "",
                request_id=f"iteration-{c.iteration}",
                candidate_id=s["candidate_id"],
                detail=MINED_HARD_NEGATIVE if s["candidate_id"] in hard else "",
            )
            for s in labelled
        ]
        self.deps.store.append(rows)  # idempotent: a rerun stores the same row keys
        return {
            "metrics": report.metrics(),
            "rows_stored": len(rows),
            "not_labelled": len(samples) - len(labelled),
            "hard_by_language": dict(report.by_language),
        }

    def _retrain(self, out: Path) -> dict[str, Any]:
        parent = read_result(self.dir / "reward")["parent"]
        snapshot = self.deps.store.snapshot()
        metrics = self._train_reward(snapshot, parent, out / "model")
        return {
            "parent": parent,
            "snapshot_id": snapshot.snapshot_id,
            "metrics": metrics,
            "finished_at": datetime.now(UTC).isoformat(),
        }

    def _register(self, out: Path) -> dict[str, Any]:
        retrain = read_result(self.dir / "retrain")
        registry = self.deps.registry
        version = new_version_id(
            self.config.iteration,
            retrain["snapshot_id"],
            now=datetime.fromisoformat(retrain["finished_at"]),
        )
        if version not in {m.version_id for m in registry.versions()}:  # a killed register
            register_reward_model(
                registry,
                self.dir / "retrain" / "model",
                version_id=version,
                parent=retrain["parent"],
                iteration=self.config.iteration,
                snapshot_id=retrain["snapshot_id"],
                metrics=self._metrics(),
            )
        if self.config.mark_canary:
            registry.mark_canary(version)
        return {"version_id": version, "parent": retrain["parent"]}

    # -- helpers ---------------------------------------------------------------------

    def _train_reward(self, snapshot: Snapshot, parent: str, target: Path) -> dict[str, float]:
        rows = snapshot.rows
        missing = {r.language for r in rows if not r.prompt}
        prompts = mbxp_prompts(self.deps.data_dir, missing) if missing else {}
        pairs = build_pairs(rows, self.config.pairs, prompts=prompts)
        if pairs.train and not pairs.heldout_problems:  # (no train pairs: the trainer says)
            raise NoPairsError(
                f"snapshot {snapshot.snapshot_id} has no held-out problem to measure the "
                "reward model on: add data (`codejury train mutate`) or raise "
                "training.heldout_fraction"
            )
        result = train_reward_model(
            pairs,
            self.deps.registry.model_dir(parent),
            target,
            self.config.reward,
            progress=self.progress,
        )
        return result.metrics

    def _reward_model(self) -> RewardModel:
        return RewardModel.load(
            self.dir / "reward" / "model",
            version=f"iteration-{self.config.iteration}-reward",
            config=scoring_config(self.settings),
        )

    def _reference_scores(
        self,
        scorer: RewardModel,
        scored: Sequence[ScoredSample],
        prompts: dict[tuple[str, str], str],
    ) -> dict[tuple[str, str], list[float]]:
        """Scores of the known passing programs of problems none of whose samples passed."""
        without_pass = {s.problem_key for s in scored} - {s.problem_key for s in scored if s.passed}
        if not without_pass:
            return {}
        snapshot = self.deps.store.load(read_result(self.dir / "reward")["snapshot_id"])
        known: dict[tuple[str, str], list[str]] = {}
        for row in snapshot.rows:
            if row.passed and row.problem_key in without_pass:
                known.setdefault(row.problem_key, [])
                if row.program not in known[row.problem_key]:
                    known[row.problem_key].append(row.program)
        out = {}
        for key, programs in known.items():
            values = [s for s in score_fitting(scorer, prompts[key], programs) if s is not None]
            if values:
                out[key] = values
        return out

    def _metrics(self) -> dict[str, float]:
        """The manifest's metrics: the retrained model's, the first reward model's held-out
        numbers, mining counts and a PPO summary (whatever steps are complete)."""
        metrics: dict[str, float] = {}
        if is_complete(self.dir / "retrain"):
            metrics.update(read_result(self.dir / "retrain")["metrics"])
        if is_complete(self.dir / "reward"):
            first = read_result(self.dir / "reward")["metrics"]
            for name in ("heldout_pairwise_accuracy", "heldout_pass_at_1"):
                metrics[f"reward_step_{name}"] = first[name]
        if is_complete(self.dir / "ppo"):
            ppo = read_result(self.dir / "ppo")
            for name in ("steps", "reward_mean_first", "reward_mean_last", "kl_last"):
                metrics[f"ppo_{name}"] = float(ppo[name])
        if is_complete(self.dir / "mine"):
            metrics.update(read_result(self.dir / "mine")["metrics"])
        return metrics


def _execute(
    backend: ExecutionBackend,
    problem: BenchmarkProblem,
    samples: Sequence[dict[str, Any]],
    limits: Limits,
) -> list[tuple[str, str]]:
    """(candidate id, status name) of each sample, run against the problem's tests."""
    if not samples:
        return []
    candidates = [
        domain_pb2.Candidate(
            candidate_id=s["candidate_id"],
            problem_id=s["problem_id"],
            index=s["index"],
            completion=s["completion"],
        )
        for s in samples
    ]
    results = backend.execute_batch(problem.problem, candidates, limits)
    return [
        (s["candidate_id"], domain_pb2.ExecutionStatus.Name(r.status))
        for s, r in zip(samples, results, strict=True)
    ]


def _group_samples(
    samples: Sequence[dict[str, Any]],
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in samples:
        groups.setdefault((s["language"], s["problem_id"]), []).append(s)
    return groups


__all__ = [
    "STEPS",
    "IterationConfig",
    "IterationDeps",
    "IterationResult",
    "check_languages",
    "run_iteration",
    "training_problems",
]
