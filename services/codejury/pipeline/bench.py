"""``codejury bench pipeline``: what the Kafka pipeline costs over calling the three
services directly, at several concurrencies, in one run.

Both paths solve the same problems with the same tiny models and settings: the
*pipeline* through the Solve front door of an embedded deployment (tansu, a Celery
worker, a process per service, KServe for the reranker); *direct* in this process, one
call after another: the generator, the sandbox executor, the reward model. For each
concurrency the two paths run back to back, so their ratio is measured on the machine
in the same state. The models are tiny so the plumbing, not the model, dominates: the
ratio is an upper bound on the overhead a real model would see.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from codejury.core.settings import Settings, load_settings, with_group
from codejury.core.stats import percentile
from codejury.execution.factory import default_limits, make_executor
from codejury.generation.factory import make_generator
from codejury.pipeline.client import SolveClient
from codejury.pipeline.embedded import EmbeddedPipeline
from codejury.proto.v1 import domain_pb2
from codejury.reranking.factory import reward_router
from codejury.reranking.routing import RewardModelRanker, draw_for_key

PIPELINE, DIRECT = "pipeline", "direct"


@dataclass(frozen=True)
class LoadRun:
    mode: str
    concurrency: int
    requests: int
    seconds: float
    latencies_s: tuple[float, ...]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_s, q) if self.latencies_s else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.latencies_s) if self.latencies_s else 0.0


def bench_settings(root: Path) -> Settings:
    """Tiny models, every port picked free, everything under ``root``."""
    from codejury.generation.tiny import build_model_dir

    model = build_model_dir(root / "tiny-lm", context=1024)
    return load_settings(
        {
            "run_dir": root / "run",
            "generation": {"model": str(model), "max_new_tokens": 24, "grpc_port": 0},
            "execution": {"grpc_port": 0, "warm_sandboxes": 2, "timeout_s": 5},
            "reranking": {"grpc_port": 0, "model_http_port": 0, "model_grpc_port": 0},
            "pipeline": {"grpc_port": 0, "reranker_backbone": "tiny", "max_in_flight": 64},
        }
    )


def problems(count: int) -> list[domain_pb2.Problem]:
    return [
        domain_pb2.Problem(
            problem_id=f"add_{i}",
            language="python",
            prompt=f"def add_{i}(a, b):\n    ",
            tests=f"\nassert add_{i}(1, 2) == 3\n",
            assembly=domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E,
        )
        for i in range(count)
    ]


def run_load(
    mode: str,
    solve: Callable[[domain_pb2.Problem], object],
    batch: Sequence[domain_pb2.Problem],
    concurrency: int,
) -> LoadRun:
    def timed(problem: domain_pb2.Problem) -> float:
        started = time.perf_counter()
        solve(problem)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = tuple(pool.map(timed, batch))
    return LoadRun(mode, concurrency, len(batch), time.perf_counter() - started, latencies)


@contextmanager
def direct_solver(settings: Settings, n: int) -> Iterator[Callable[[domain_pb2.Problem], object]]:
    """The three services called in this process, in the order the pipeline calls them."""
    generator = make_generator(settings.generation)
    executor = make_executor(settings)
    limits = default_limits(settings)
    with reward_router(with_group(settings, "reranking", backend="in-process")) as router:
        ranker = RewardModelRanker(router)

        def solve(problem: domain_pb2.Problem) -> object:
            key = uuid.uuid4().hex
            candidates = generator.generate(
                [problem], n, domain_pb2.SamplingParams(), request_key=key
            )
            executor.execute_batch(problem, candidates, limits)
            return ranker.rank(problem, candidates, draw=draw_for_key(key))

        try:
            yield solve
        finally:
            generator.backend.close()
            executor.sandbox.close()


def pipeline_solver(client: SolveClient, n: int) -> Callable[[domain_pb2.Problem], object]:
    def solve(problem: domain_pb2.Problem) -> object:
        return client.solve(problem, n, deadline_s=300)

    return solve


def measure(
    settings: Settings,
    concurrencies: Sequence[int],
    *,
    requests_per_level: int,
    n: int,
    progress: Callable[[str], None],
) -> list[LoadRun]:
    """Pipeline and direct runs, back to back for each concurrency."""
    runs: list[LoadRun] = []
    batch = problems(requests_per_level)
    progress("starting the embedded pipeline and the in-process services")
    with (
        EmbeddedPipeline(settings) as deployment,
        SolveClient(deployment.solve_address) as client,
        direct_solver(deployment.settings, n) as direct,
    ):
        through_pipeline = pipeline_solver(client, n)
        warm = problems(2)
        run_load(PIPELINE, through_pipeline, warm, 2)  # first requests pay group joins
        run_load(DIRECT, direct, warm, 2)
        for concurrency in concurrencies:
            progress(f"concurrency {concurrency}: pipeline")
            runs.append(run_load(PIPELINE, through_pipeline, batch, concurrency))
            progress(f"concurrency {concurrency}: direct")
            runs.append(run_load(DIRECT, direct, batch, concurrency))
    return runs
