"""``codejury bench method``'s steps above training and the pipeline: the paper's Table 1
shape (RewardRanker, ECIR 2025) with the demo generator.

The bench keeps its own run directory (``<run_dir>/bench/method``: registry, training
store, iterations, the embedded pipeline's files) so nothing it trains reaches the
deployment's registry. In it:

- ``sampling.json``: what the cached samples were drawn with (n, seed, temperature,
  tokens, generator); a rerun with other settings is refused rather than mixed in;
- ``outcomes.jsonl``: one line per problem (``evaluation.outcome_log``), written as the
  Solve replies come back, so a rerun samples only the problems still missing (the
  generator's sample cache, shared with ``eval`` and ``demo``, answers repeated
  requests without sampling);
- ``ledger.json``: every reward-model iteration's version, parent, snapshot and the wall
  time spent on it, and the wall time of each phase summed over the runs that did work;
- ``scores/<version>.json``: each registered version's scores of the same cached
  candidates (a paired comparison: only the reranker changes between rows).

Iteration 0 is the first trained reranker (``training.first_reranker``: cold start on
MBXP, what ``up`` and ``demo`` serve); iterations 1..K are ``run_iteration`` on MBXP
training problems, each starting its reward model from the previous version and its
generator from the previous iteration's PPO-aligned one, resumable by step. The aligned
generators' own samples would be another row (a different candidate set per iteration);
the table does not include them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from codejury.core.errors import ConfigurationError
from codejury.core.files import write_text_atomic
from codejury.core.settings import Settings, with_group
from codejury.demo.self_training import IterationSize, score_outcomes
from codejury.evaluation.datasets import BenchmarkProblem
from codejury.evaluation.method_table import RowKind, RowSpec
from codejury.evaluation.metrics import ProblemOutcome
from codejury.execution.backends import ExecutionBackend
from codejury.pipeline.evaluate import LOGPROB
from codejury.reranking.factory import load_version
from codejury.reranking.registry import ModelRegistry, registry_uri
from codejury.training.iteration import IterationConfig, IterationDeps, run_iteration
from codejury.training.store import TrainingStore

Report = Callable[[str], None]
Progress = Callable[[int, int | None], None]

OUTCOMES_FILE = "outcomes.jsonl"
SAMPLING_FILE = "sampling.json"
LEDGER_FILE = "ledger.json"


#: The demo's sizes: an iteration in minutes on 2 CPU cores.
CPU_SIZE = IterationSize(
    cold_start_problems=20,
    training_problems=3,
    samples_per_problem=2,
    ppo_steps=1,
    ppo_batch_size=4,
    ppo_mini_batch_size=2,
    ppo_max_new_tokens=64,
)
#: On a GPU: enough PPO steps and mined samples for the iterations to differ.
GPU_SIZE = IterationSize(
    cold_start_problems=60,
    training_problems=40,
    samples_per_problem=8,
    ppo_steps=20,
    ppo_batch_size=16,
    ppo_mini_batch_size=4,
    ppo_max_new_tokens=256,
)


def bench_settings(
    base: Settings,
    *,
    training_languages: Sequence[str],
    size: IterationSize,
    max_new_tokens: int,
) -> Settings:
    """The bench's settings: its own run directory, registry and store; the generator's
    sample cache where ``eval`` and ``demo`` keep theirs; the iterations' sizes."""
    cache = base.generation.cache_dir or base.run_dir.resolve() / "cache" / "generation"
    settings = base.model_copy(update={"run_dir": base.run_dir.resolve() / "bench" / "method"})
    settings = with_group(settings, "reranking", registry_uri=None)
    settings = with_group(settings, "generation", cache_dir=cache, max_new_tokens=max_new_tokens)
    return size.on(with_group(settings, "training", store_dir=None), training_languages)


def registry_of(settings: Settings) -> ModelRegistry:
    """The registry the bench's embedded pipeline serves from (as ``codejury up`` finds it)."""
    return ModelRegistry.from_uri(registry_uri(settings))


# -- the cached samples ----------------------------------------------------------------


def sampling_fingerprint(
    settings: Settings, *, n: int, seed: int, temperature: float, top_p: float
) -> dict[str, Any]:
    g = settings.generation
    return {
        "n": n,
        "seed": seed,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": g.max_new_tokens,
        "backend": g.backend,
        "model": g.model,
        "gguf_file": g.gguf_file,
    }


def check_sampling(directory: Path, fingerprint: Mapping[str, Any]) -> None:
    """Record what the samples are drawn with; refuse to add to samples drawn otherwise."""
    path = directory / SAMPLING_FILE
    if not path.is_file():
        write_text_atomic(path, json.dumps(dict(fingerprint), indent=2, sort_keys=True) + "\n")
        return
    recorded = json.loads(path.read_text())
    differ = sorted(
        k for k in set(recorded) | set(fingerprint) if recorded.get(k) != fingerprint.get(k)
    )
    if differ:
        changes = ", ".join(f"{k} {recorded.get(k)!r} -> {fingerprint.get(k)!r}" for k in differ)
        raise ConfigurationError(
            f"{directory} holds samples drawn with other settings ({changes}): a table mixing "
            "them would compare nothing; rerun with the recorded settings, or move "
            f"{directory} away (or pass another --run-dir) to start a new one"
        )


# -- the ledger: versions and wall times -----------------------------------------------


@dataclass(frozen=True)
class IterationRecord:
    iteration: int
    version: str
    parent: str | None
    snapshot_id: str
    seconds: float  # wall time spent training it, summed over the runs that worked on it
    heldout_pass_at_1: float | None  # on MBXP's held-out split, from its manifest


class Ledger:
    """``ledger.json``: iteration records and wall time per phase, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = json.loads(path.read_text()) if path.is_file() else {}
        self.iterations = {
            int(k): IterationRecord(**v) for k, v in data.get("iterations", {}).items()
        }
        self.phases: dict[str, float] = dict(data.get("phases", {}))

    def add_time(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds
        self._save()

    def record(self, entry: IterationRecord) -> None:
        self.iterations[entry.iteration] = entry
        self._save()

    def _save(self) -> None:
        data = {
            "iterations": {str(k): asdict(v) for k, v in sorted(self.iterations.items())},
            "phases": self.phases,
        }
        write_text_atomic(self.path, json.dumps(data, indent=2) + "\n")


def iteration_record(
    registry: ModelRegistry, iteration: int, version: str, seconds: float
) -> IterationRecord:
    manifest = registry.get(version)
    return IterationRecord(
        iteration=iteration,
        version=version,
        parent=manifest.parent,
        snapshot_id=manifest.data_snapshot_id,
        seconds=seconds,
        heldout_pass_at_1=manifest.metrics.get("heldout_pass_at_1"),
    )


def train_iterations(
    settings: Settings,
    ledger: Ledger,
    *,
    iterations: int,
    data_dir: Path,
    backend: Callable[[], contextlib.AbstractContextManager[ExecutionBackend]],
    report: Report,
    progress: Progress | None = None,
) -> list[IterationRecord]:
    """Iterations 1..K after iteration 0 (already in the ledger), each from the previous
    version; a registered iteration is not trained again (its steps are all skipped)."""
    if 0 not in ledger.iterations:
        raise ConfigurationError(
            "iteration 0 (the first trained reranker) is not recorded: train it first"
        )
    registry = registry_of(settings)
    deps = IterationDeps(
        settings, TrainingStore.from_settings(settings), registry, backend, data_dir
    )
    records = [ledger.iterations[0]]
    for i in range(1, iterations + 1):
        known = ledger.iterations.get(i)
        config = IterationConfig.from_settings(settings, i, base_version=records[-1].version)
        started = time.monotonic()

        def on_step(step: str, what: str, i: int = i) -> None:
            report(f"iteration {i}, {step}: {what}")

        result = run_iteration(config, deps, on_step=on_step, progress=progress)
        if result.version_id is None:  # unreachable without stop_after
            raise RuntimeError(f"iteration {i} registered no version")
        spent = (time.monotonic() - started) if result.ran else 0.0
        earlier = known.seconds if known is not None and known.version == result.version_id else 0.0
        entry = iteration_record(registry, i, result.version_id, earlier + spent)
        ledger.record(entry)
        records.append(entry)
    return records


# -- rescoring the cached candidates ---------------------------------------------------


def scores_for(
    settings: Settings,
    version: str,
    outcomes: Sequence[ProblemOutcome],
    problems: Sequence[BenchmarkProblem],
    *,
    progress: Progress | None = None,
) -> list[list[float]]:
    """``version``'s scores of every outcome's candidates, cached in
    ``scores/<version>.json`` (only problems not in the cache are scored)."""
    path = settings.run_dir / "scores" / f"{version}.json"
    cached: dict[str, list[float | None]] = json.loads(path.read_text()) if path.is_file() else {}

    def key(o: ProblemOutcome) -> str:
        return f"{o.language}/{o.problem_id}"

    missing = [o for o in outcomes if key(o) not in cached]
    if missing:
        model = load_version(settings, registry_of(settings), version)
        prompts = {(p.problem.language, p.problem.problem_id): p.problem.prompt for p in problems}
        done = 0

        def on_done(o: ProblemOutcome, values: list[float]) -> None:
            nonlocal done
            cached[key(o)] = [v if v != float("-inf") else None for v in values]
            done += 1
            if done % 25 == 0 or done == len(missing):  # a kill loses at most 25 problems
                write_text_atomic(path, json.dumps(cached, sort_keys=True) + "\n")
            if progress is not None:
                progress(done, len(missing))

        score_outcomes(model, missing, prompts, on_done=on_done)
    return [[float("-inf") if v is None else v for v in cached[key(o)]] for o in outcomes]


def iteration_ranker(iteration: int) -> str:
    return f"reward_model_iteration_{iteration}"


def with_scores(
    outcomes: Sequence[ProblemOutcome], ranker: str, scores: Sequence[Sequence[float]]
) -> list[ProblemOutcome]:
    """``outcomes`` with one more ranker's score on every candidate."""
    return [
        replace(
            o,
            candidates=tuple(
                replace(c, scores={**c.scores, ranker: s})
                for c, s in zip(o.candidates, values, strict=True)
            ),
        )
        for o, values in zip(outcomes, scores, strict=True)
    ]


# -- the table's rows ------------------------------------------------------------------


def table_spec(iterations: int, *, greedy: bool) -> tuple[list[RowSpec], list[tuple[str, str]]]:
    """Rows: greedy, random pick, mean log-prob, reward model 0..K, oracle. Comparisons:
    iteration k vs k-1, and every iteration vs mean log-prob and vs random pick."""
    rows = [RowSpec("greedy", "greedy", RowKind.GREEDY)] if greedy else []
    rows += [
        RowSpec("random", "random pick", RowKind.RANDOM),
        RowSpec("logprob", "mean log-prob", RowKind.PICK, LOGPROB),
        *(
            RowSpec(
                iteration_ranker(k),
                f"reward model, iteration {k}",
                RowKind.PICK,
                iteration_ranker(k),
            )
            for k in range(iterations + 1)
        ),
        RowSpec("oracle", "oracle (pass@n)", RowKind.ORACLE),
    ]
    comparisons = [(iteration_ranker(k), iteration_ranker(k - 1)) for k in range(1, iterations + 1)]
    for k in range(iterations + 1):
        comparisons += [(iteration_ranker(k), "logprob"), (iteration_ranker(k), "random")]
    return rows, comparisons
