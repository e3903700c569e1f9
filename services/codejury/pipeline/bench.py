"""``codejury bench pipeline``: what the Kafka pipeline costs over calling the three
services directly, at several concurrencies, in one run.

Both paths solve the same problems with the same tiny models and settings: the
*pipeline* through the Solve front door of an embedded deployment (tansu, a Celery
worker, a process per service, KServe for the reranker); *direct* in this process, one
call after another: the generator, the sandbox executor, the reward model. For each
concurrency the two paths run back to back, so their ratio is measured on the machine
in the same state. The models are tiny so the plumbing, not the model, dominates: the
ratio is an upper bound on the overhead a real model would see.

``--observability`` (``measure_observability``) compares the pipeline with itself: two
embedded deployments side by side, one with metrics and tracing off, one with every
process serving ``/metrics`` (scraped by this process) and exporting its spans over OTLP
to a receiver here; the same load alternates between them, round by round (off, on, on,
off, ...), so both see the machine in the same states. Both deployments run the whole time,
so the idle one's pollers weigh equally on either side; halfway, both start again in the
other order, so neither mode keeps the advantage of a position.
"""

from __future__ import annotations

import functools
import statistics
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from codejury.bus.embedded import free_port_run
from codejury.core.cpus import usable_cpus
from codejury.core.metrics import serve_metrics
from codejury.core.settings import Settings, load_settings, with_group
from codejury.core.stats import percentile
from codejury.execution.factory import default_limits, make_executor
from codejury.generation.factory import make_generator
from codejury.pipeline.client import SolveClient
from codejury.pipeline.embedded import SERVICES, EmbeddedPipeline, cpu_shares
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
        # direct gets the services' thread shares too: on 2 cores one torch thread served
        # it better than two (5.7 against 4.1 requests/s at concurrency 16)
        direct_solver(cpu_shares(deployment.settings, usable_cpus()), n) as direct,
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


OFF, ON = "off", "on"
#: Issue 16: metrics and tracing may cost at most this share of Solve throughput.
COST_TARGET = 0.03


@dataclass(frozen=True)
class ObservabilityRun:
    """One concurrency's alternating rounds, observability off and on."""

    concurrency: int
    rounds: tuple[LoadRun, ...]  # mode OFF or ON, in the order they ran

    def of(self, mode: str) -> LoadRun:
        """The rounds of ``mode`` as one run: requests and seconds summed."""
        runs = [r for r in self.rounds if r.mode == mode]
        return LoadRun(
            mode,
            self.concurrency,
            sum(r.requests for r in runs),
            sum(r.seconds for r in runs),
            tuple(latency for r in runs for latency in r.latencies_s),
        )

    @property
    def throughput_ratio(self) -> float:
        """Solve throughput with observability on over off (1.0: no cost)."""
        off = self.of(OFF).per_second
        return self.of(ON).per_second / off if off else 0.0

    @property
    def cost(self) -> float:
        """The share of throughput observability costs (target: at most 0.03)."""
        return 1.0 - self.throughput_ratio

    @property
    def spread(self) -> float:
        """The noise: the widest gap between two rounds of the same mode, as a share of
        that mode's mean. A cost smaller than this is not resolved by the run."""
        widest = 0.0
        for mode in (OFF, ON):
            rates = [r.per_second for r in self.rounds if r.mode == mode]
            mean = statistics.fmean(rates) if rates else 0.0
            if mean:
                widest = max(widest, (max(rates) - min(rates)) / mean)
        return widest

    def as_dict(self) -> dict[str, object]:
        """The run for the JSON report."""
        row: dict[str, object] = {
            "concurrency": self.concurrency,
            "throughput_ratio_on_to_off": round(self.throughput_ratio, 4),
            "cost": round(self.cost, 4),
            "round_spread": round(self.spread, 4),
            "met": self.cost <= COST_TARGET,
        }
        for mode in (OFF, ON):
            merged = self.of(mode)
            row[mode] = {
                "requests": merged.requests,
                "requests_per_s": round(merged.per_second, 3),
                "p50_ms": round(merged.percentile(0.5) * 1000, 1),
                "p99_ms": round(merged.percentile(0.99) * 1000, 1),
            }
        row["rounds"] = [
            {"mode": r.mode, "requests_per_s": round(r.per_second, 3)} for r in self.rounds
        ]
        return row


@dataclass(frozen=True)
class ObservabilityReport:
    runs: tuple[ObservabilityRun, ...]
    spans: int  # spans the receiver got from the observed deployment
    scrapes: int  # /metrics pages read from it


class _Scraper:
    """Reads every ``/metrics`` page of ``ports`` every ``interval_s``, as Prometheus
    would, so serving them costs what it costs in production (and a little more: a
    scrape every 30 s is usual)."""

    def __init__(self, ports: Sequence[int], interval_s: float) -> None:
        self._urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.scrapes = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            for url in self._urls:
                try:
                    with urllib.request.urlopen(url, timeout=10) as page:  # noqa: S310
                        page.read()
                except OSError:  # a process restarting: Prometheus would miss it too
                    self.failed += 1
                    continue
                self.scrapes += 1

    def __enter__(self) -> _Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def observed_settings(settings: Settings, *, metrics_port: int, otlp_endpoint: str) -> Settings:
    """``settings`` with every process serving metrics (from ``metrics_port`` on) and
    exporting its spans over OTLP to ``otlp_endpoint``."""
    settings = with_group(settings, "metrics", port=metrics_port, host="127.0.0.1")
    return with_group(settings, "tracing", exporter="otlp", otlp_endpoint=otlp_endpoint)


def measure_observability(
    settings: Settings,
    concurrencies: Sequence[int],
    *,
    requests_per_round: int,
    rounds: int,
    n: int,
    scrape_interval_s: float,
    progress: Callable[[str], None],
) -> ObservabilityReport:
    """For each concurrency, ``rounds`` rounds of each mode, alternating (off, on, on,
    off, ...): the same problems through a deployment with metrics and tracing off and
    one with both on.

    The rounds run in two legs, each with both deployments started afresh: in the first
    the one with observability off starts first, in the second the one with it on. Two
    runs with one start order measured "on" 7-9% faster than "off", more than any cost:
    whatever the position gives (which deployment warmed first, its ports, its place in
    the page cache) now goes to each mode for half the rounds."""
    from codejury.pipeline.trace_receiver import TraceReceiver  # the tracing extra

    runs: dict[int, list[LoadRun]] = {concurrency: [] for concurrency in concurrencies}
    scrapes = 0
    with TraceReceiver(keep=False) as receiver:
        # this process (the observed front door) on the base port, its children after it
        base = free_port_run(2 + len(SERVICES))
        modes = {
            OFF: settings.model_copy(update={"run_dir": settings.run_dir / "observability-off"}),
            ON: observed_settings(
                settings.model_copy(update={"run_dir": settings.run_dir / "observability-on"}),
                metrics_port=base,
                otlp_endpoint=receiver.endpoint,
            ),
        }
        endpoint = serve_metrics("127.0.0.1", base)
        try:
            for leg, first in enumerate((OFF, ON)):
                leg_rounds = rounds - rounds // 2 if leg == 0 else rounds // 2
                scrapes += _observability_leg(
                    modes,
                    first,
                    concurrencies,
                    batch=problems(requests_per_round),
                    rounds=leg_rounds,
                    runs=runs,
                    ports=range(base, base + 2 + len(SERVICES)),
                    n=n,
                    scrape_interval_s=scrape_interval_s,
                    progress=functools.partial(_in_leg, progress, leg + 1),
                )
        finally:
            endpoint.stop()
        # the deployments are stopped: every process flushed its last spans
        reports = tuple(ObservabilityRun(c, tuple(rs)) for c, rs in runs.items())
        return ObservabilityReport(reports, spans=receiver.count, scrapes=scrapes)


def _in_leg(progress: Callable[[str], None], leg: int, message: str) -> None:
    progress(f"leg {leg} of 2: {message}")


def _observability_leg(
    modes: dict[str, Settings],
    first: str,
    concurrencies: Sequence[int],
    *,
    batch: Sequence[domain_pb2.Problem],
    rounds: int,
    runs: dict[int, list[LoadRun]],
    ports: Sequence[int],
    n: int,
    scrape_interval_s: float,
    progress: Callable[[str], None],
) -> int:
    """Start both deployments (``first`` first), run ``rounds`` alternating rounds per
    concurrency into ``runs``, stop them; returns the scrapes made."""
    if rounds == 0:
        return 0
    with ExitStack() as stack:
        solvers = {}
        for mode in sorted(modes, key=lambda m: m != first):
            progress(f"starting the deployment with metrics and tracing {mode}")
            deployment = stack.enter_context(EmbeddedPipeline(modes[mode]))
            client = stack.enter_context(SolveClient(deployment.solve_address))
            solvers[mode] = pipeline_solver(client, n)
        scraper = stack.enter_context(_Scraper(ports, scrape_interval_s))
        for mode in (OFF, ON):  # first requests pay group joins and loads
            run_load(mode, solvers[mode], problems(2), 2)
        for concurrency in concurrencies:
            for index in range(rounds):
                for mode in (OFF, ON) if index % 2 == 0 else (ON, OFF):
                    progress(f"concurrency {concurrency}: round {index + 1}, {mode}")
                    runs[concurrency].append(run_load(mode, solvers[mode], batch, concurrency))
    return scraper.scrapes
