"""A plumbing check of the embedded deployment: broker, a stage consumer, Celery, DLQ.

It starts tansu and a Celery worker, publishes solve requests, and runs a pass-through
stage that sends each request to a sandbox worker (the health task) and publishes
``codejury.solve.completed``. One request is invalid (handler error -> DLQ), one record
is not an envelope (decode error -> DLQ), one event is published twice (dropped by id).
The report says what arrived where. ``codejury demo`` runs it until the real pipeline
(generation, execution, reranking) exists.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from celery import Celery

from codejury.bus.consumer import ConsumerStats, EventConsumer
from codejury.bus.embedded import EmbeddedBroker
from codejury.bus.envelope import Event, Outgoing
from codejury.bus.producer import EventProducer
from codejury.bus.topics import SOLVE_COMPLETED, SOLVE_REQUESTED, dlq
from codejury.core.errors import PermanentError
from codejury.core.settings import Settings
from codejury.execution.celery_app import HEALTH_TASK, make_celery_app
from codejury.execution.local_worker import LocalWorker
from codejury.proto.v1 import domain_pb2, events_pb2

_COLLECT_TIMEOUT_S = 120.0


class InvalidRequestError(PermanentError):
    """A solve request that no retry can fix."""


@dataclass(frozen=True)
class Completed:
    request_id: str
    trace_id: str
    event_id: str
    worker_pid: int
    latency_ms: float


@dataclass(frozen=True)
class DeadLettered:
    source_topic: str
    error: str


@dataclass
class SmokeReport:
    bootstrap_servers: str
    worker_pid: int | None
    published: int
    completed: list[Completed] = field(default_factory=list)
    dead_letters: list[DeadLettered] = field(default_factory=list)
    stage: ConsumerStats = field(default_factory=ConsumerStats)


def _stage_handler(
    app: Celery, timeout_s: float, pids: dict[str, int]
) -> Callable[[Event], Iterable[Outgoing]]:
    def handle(event: Event) -> Iterable[Outgoing]:
        request = event.payload
        if not isinstance(request, events_pb2.SolveRequested):
            raise InvalidRequestError(f"expected SolveRequested, got {type(request).__name__}")
        if not request.problem.language:
            raise InvalidRequestError(
                f"request {request.request_id}: problem.language is empty; set it, e.g. 'python'"
            )
        answer = app.send_task(HEALTH_TASK, args=[request.request_id]).get(
            timeout=timeout_s, interval=0.02
        )
        pids[request.request_id] = int(answer["pid"])
        done = events_pb2.SolveCompleted(request_id=request.request_id, problem=request.problem)
        return [Outgoing(SOLVE_COMPLETED, done, key=request.request_id)]

    return handle


def run_smoke(
    settings: Settings, *, requests: int = 5, on_progress: Callable[[int, int], None] | None = None
) -> SmokeReport:
    """Run the plumbing check; ``on_progress(done, expected)`` is called as events arrive."""
    app = make_celery_app(settings)
    log_dir = settings.run_dir.resolve() / "logs"
    with (
        EmbeddedBroker(settings.broker, settings.bus, log_dir=log_dir) as broker,
        LocalWorker(settings, app) as worker,
    ):
        bus = broker.bus_settings
        run_id = uuid.uuid4().hex[:8]
        sent_at: dict[str, float] = {}
        with EventProducer(bus, name="smoke-client") as producer:
            for i in range(requests):
                request_id = f"smoke-{run_id}-{i}"
                problem = domain_pb2.Problem(
                    problem_id=f"smoke/{i}", language="python", prompt="def f():\n"
                )
                env = producer.publish(
                    SOLVE_REQUESTED,
                    events_pb2.SolveRequested(request_id=request_id, problem=problem, n=1),
                    key=request_id,
                )
                sent_at[request_id] = time.monotonic()
                if i == 0:  # the same event again: dropped by its id
                    producer.send_raw(SOLVE_REQUESTED, env.SerializeToString(), key=b"dup")
            producer.publish(
                SOLVE_REQUESTED,
                events_pb2.SolveRequested(request_id=f"smoke-{run_id}-bad", n=1),
            )
            producer.send_raw(SOLVE_REQUESTED, b"this is not a protobuf envelope")
            producer.flush()

        pids: dict[str, int] = {}
        stage = EventConsumer(
            bus,
            group_id=f"codejury-smoke-stage-{run_id}",
            topics=[SOLVE_REQUESTED],
            handler=_stage_handler(app, settings.celery.result_timeout_s, pids),
            name="smoke-stage",
        )
        stage_thread = threading.Thread(target=stage.run, name="smoke-stage", daemon=True)
        stage_thread.start()

        report = SmokeReport(
            bootstrap_servers=bus.bootstrap_servers, worker_pid=worker.pid, published=requests + 3
        )
        expected = requests + 2  # completions + two dead letters
        arrived_at: dict[str, float] = {}

        def collect(event: Event) -> Iterable[Outgoing]:
            if isinstance(event.payload, events_pb2.SolveCompleted):
                rid = event.payload.request_id
                arrived_at[rid] = time.monotonic()
                report.completed.append(
                    Completed(
                        request_id=rid,
                        trace_id=event.trace_id,
                        event_id=event.event_id,
                        worker_pid=pids.get(rid, -1),
                        latency_ms=(arrived_at[rid] - sent_at.get(rid, arrived_at[rid])) * 1000,
                    )
                )
            elif isinstance(event.payload, events_pb2.DeadLetter):
                letter = event.payload
                report.dead_letters.append(DeadLettered(letter.source_topic, letter.error))
            if on_progress:
                on_progress(len(report.completed) + len(report.dead_letters), expected)
            if len(report.completed) + len(report.dead_letters) >= expected:
                collector.request_stop()
            return []

        collector = EventConsumer(
            bus,
            group_id=f"codejury-smoke-collector-{run_id}",
            topics=[SOLVE_COMPLETED, dlq(SOLVE_REQUESTED)],
            handler=collect,
            name="smoke-collector",
        )
        collector.run(idle_timeout_s=_COLLECT_TIMEOUT_S)
        stage.request_stop()
        stage_thread.join(timeout=30)
        report.stage = stage.stats
        return report
