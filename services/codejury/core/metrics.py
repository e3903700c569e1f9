"""Prometheus metrics of every CodeJury process, and the ``/metrics`` endpoint serving them.

Every metric is defined here, once, so a dashboard's queries and the code agree on names
and labels. gRPC servers use go-grpc-prometheus's names (``grpc_server_handled_total``
and friends) so existing gRPC dashboards and alerts work unchanged; everything else is
``codejury_*``. Labels are bounded: methods, topics, stages, languages, statuses and
reranker versions, never request ids.

Each process serves its own metrics on ``metrics.port`` (off by default; the chart's
monitoring values turn it on, and a ServiceMonitor scrapes it). ``codejury up`` gives each
of its processes the next port.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

from codejury.core.errors import ConfigurationError

# Latency buckets from 5 ms (a cached rank) to 5 min (a Solve with a slow toolchain).
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

GRPC_STARTED = Counter(
    "grpc_server_started_total",
    "RPCs started on the server.",
    ["grpc_service", "grpc_method", "grpc_type"],
)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from an RPC's start to its last response.",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=_SECONDS,
)

EVENTS = Counter(
    "codejury_consumer_events_total",
    "Events a stage's consumer finished with, by outcome: handled, duplicate (already "
    "handled; dropped), expired (past the request's deadline; dropped) or dead_lettered.",
    ["consumer", "topic", "outcome"],
)
HANDLING_SECONDS = Histogram(
    "codejury_consumer_handling_seconds",
    "Time a stage's handler took for one event, retries included.",
    ["consumer", "topic"],
    buckets=_SECONDS,
)
RETRIES = Counter(
    "codejury_consumer_retries_total",
    "Handler attempts that failed and were retried.",
    ["consumer", "topic"],
)
DEAD_LETTERS = Counter(
    "codejury_dead_letters_total",
    "Events sent to their topic's .dlq, by the error's type.",
    ["consumer", "topic", "error_type"],
)
CONSUMER_LAG = Gauge(
    "codejury_consumer_lag_records",
    "Records of a partition not yet consumed (the broker's high watermark minus the "
    "consumer's position), as of the consumer's last poll of it.",
    ["consumer", "topic", "partition"],
)

# The Solve front door's view of the stages (pipeline.stage_health, codejury up's supervisor).
STAGE_UP = Gauge(
    "codejury_stage_up",
    "1 while the Solve front door takes requests for a stage, 0 while it refuses them at once "
    "because the stage is down (its health checks failing for pipeline.stage_down_after_s, "
    "or codejury up restarting it).",
    ["stage"],
)
STAGE_CHECKS = Counter(
    "codejury_stage_health_checks_total",
    "Health checks of a stage by the Solve front door's watch, by what was seen: serving, "
    "not_serving or unreachable.",
    ["stage", "seen"],
)

SANDBOX_RUNS = Counter(
    "codejury_sandbox_runs_total",
    "Programs run in the sandbox, by language and result status (PASSED, FAILED, TIMEOUT, ...).",
    ["language", "status"],
)
SANDBOX_SECONDS = Histogram(
    "codejury_sandbox_run_seconds",
    "Time to compile (when the language does) and run one program in the sandbox.",
    ["language"],
    buckets=_SECONDS,
)

GENERATED_TOKENS = Counter(
    "codejury_generation_tokens_total",
    "Completion tokens generated (rate(): tokens per second), by model.",
    ["model"],
)
GENERATION_SECONDS = Histogram(
    "codejury_generation_seconds",
    "Time the model took for one request's candidates (cache hits not counted).",
    ["model"],
    buckets=_SECONDS,
)

RERANKS = Counter(
    "codejury_reranker_requests_total",
    "Rank requests answered, by the reranker version that scored them.",
    ["version"],
)
RERANKER_UNTRAINED = Gauge(
    "codejury_reranker_untrained",
    "1 while this model server serves an untrained score head (near-random picks), else 0.",
    ["version"],
)
RERANK_PICKS = Counter(
    "codejury_reranker_picks_total",
    "Solve answers, by the reranker version that picked them and whether the pick passed "
    "its tests: passed, failed, or unlabelled (no tests, or a sandbox fault of ours), as "
    "the feedback's label for training says.",
    ["version", "outcome"],
)

# The operator (one series per SelfTrainingRun) and the traffic exporter.
RUN_RECONCILES = Counter(
    "codejury_operator_reconciles_total",
    "Reconcile passes of SelfTrainingRuns, by outcome: ok, or error (kopf retries it).",
    ["outcome"],
)
RUN_ACTIONS = Counter(
    "codejury_operator_actions_total",
    "Actions the operator applied, by kind (StartTrainingJob, SetCanary, Promote, ...).",
    ["action"],
)
RUN_PHASE = Gauge(
    "codejury_run_phase",
    "1 for the phase a SelfTrainingRun is in (Pending, Training, Canary, Idle, ...).",
    ["namespace", "run", "phase"],
)
RUN_ITERATION = Gauge(
    "codejury_run_iteration", "The iteration a SelfTrainingRun is on.", ["namespace", "run"]
)
RUN_CANARY_WEIGHT = Gauge(
    "codejury_run_canary_weight_percent",
    "The share of traffic a SelfTrainingRun's canary gets now.",
    ["namespace", "run"],
)
TRAFFIC_EXPORTS = Counter(
    "codejury_traffic_exports_total",
    "Writes of a run's traffic ConfigMap by the exporter, by outcome: ok or error.",
    ["outcome"],
)


@dataclass
class MetricsServer:
    """The ``/metrics`` HTTP endpoint of this process."""

    server: WSGIServer
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(host: str, port: int, *, multiprocess_dir: Path | None = None) -> MetricsServer:
    """Serve this process's metrics at ``http://host:port/metrics`` (port 0: any free one)
    from a daemon thread. ``multiprocess_dir``: serve what every process writing there
    counted (a Celery prefork worker's pool processes: ``codejury worker`` points
    ``PROMETHEUS_MULTIPROC_DIR`` there before prometheus_client is imported)."""
    registry = REGISTRY
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror}): choose another "
            "CODEJURY_METRICS__PORT, or unset it to serve none"
        ) from exc
    return MetricsServer(server, server.server_port)
