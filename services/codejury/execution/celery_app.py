"""The Celery app that fans sandbox runs out to workers.

Built by ``make_celery_app(settings)`` at an entry point (``codejury worker``, the
execution service), never at import time. The broker is Redis in a cluster; the
embedded default is the ``filesystem://`` transport under the run directory, which
needs no server and works across local processes. Kafka is not Celery's broker.

Choices made deliberately:
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a task whose worker dies is
  redelivered rather than lost (sandbox runs are idempotent);
- ``worker_prefetch_multiplier=1``: runs are long and uneven, so a worker must not
  hoard tasks another idle worker could start;
- hard and soft time limits so a stuck run cannot hold a worker forever;
- results expire (``result_expires``) so the backend does not grow without bound.
"""

from __future__ import annotations

import base64
import os
import socket
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown

from codejury.core.errors import CodeJuryError
from codejury.core.settings import Settings
from codejury.core.tracing import TRACEPARENT, TRACESTATE, Span, Tracing, open_tracing
from codejury.execution import celery_transport
from codejury.execution.assembly import assemble
from codejury.execution.backends import EXECUTE_TASK, PRECOMPILE_TASK, encode
from codejury.execution.executor import Executor
from codejury.execution.factory import make_executor
from codejury.execution.sandbox import Limits
from codejury.proto.v1 import domain_pb2

HEALTH_TASK = "codejury.health"


def broker_url(settings: Settings) -> str:
    url = settings.celery.broker_url
    return url.get_secret_value() if url is not None else "filesystem://localhost//"


def _filesystem_dirs(settings: Settings) -> tuple[Path, Path, Path]:
    root = settings.run_dir.resolve() / "celery"
    dirs = (root / "queue", root / "processed", root / "control")
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    return dirs


def result_backend(settings: Settings) -> str:
    secret = settings.celery.result_backend
    configured = None if secret is None else secret.get_secret_value()
    if configured and configured.startswith("file://"):
        # Celery's own file backend lets a poller read a result half-written
        return celery_transport.result_backend_url(configured.removeprefix("file://"))
    if configured:
        return configured
    results = settings.run_dir.resolve() / "celery" / "results"
    results.mkdir(parents=True, exist_ok=True)
    return celery_transport.result_backend_url(str(results))


def make_celery_app(settings: Settings) -> Celery:
    """The Celery app with CodeJury's tasks registered."""
    app = Celery("codejury")
    transport_options: dict[str, Any] = {}
    url = broker_url(settings)
    if url.startswith("filesystem://"):
        # the same folder broker, with messages written atomically (celery_transport.py)
        url = url.replace("filesystem", celery_transport.register(), 1)
        queue, processed, control = _filesystem_dirs(settings)
        transport_options = {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(processed),
            # The broadcast (pidbox) exchange; kombu's default is ./control in the cwd.
            "control_folder": str(control),
            "store_processed": False,
            # The filesystem transport polls its folder; a sandbox run takes tens of
            # milliseconds, so the default 1 s poll would dominate latency.
            "polling_interval": 0.05,
        }
    app.conf.update(
        broker_url=url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=10,
        result_backend=result_backend(settings),
        result_expires=settings.celery.result_expires_s,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_time_limit=settings.celery.task_time_limit_s,
        task_soft_time_limit=settings.celery.task_soft_time_limit_s,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.celery.worker_concurrency,
        worker_hijack_root_logger=False,
        task_track_started=False,
    )

    @app.task(name=HEALTH_TASK)  # type: ignore[untyped-decorator]
    def health(token: str) -> dict[str, Any]:
        """Answers with the worker's identity: proves a worker process picked the task up."""
        return {"token": token, "pid": os.getpid(), "host": socket.gethostname()}

    executors: dict[int, Executor] = {}  # one per worker process, built after the fork
    # Likewise the tracer: the SDK's export thread and gRPC channel do not survive a fork.
    tracers: dict[int, Tracing] = {}

    def executor_here() -> Executor:
        executor = executors.get(os.getpid())
        if executor is None:
            executor = executors[os.getpid()] = make_executor(settings)
        return executor

    def tracing_here() -> Tracing:
        tracing = tracers.get(os.getpid())
        if tracing is None:
            tracing = tracers[os.getpid()] = open_tracing(
                settings.tracing, "worker", tls=settings.tls
            )
        return tracing

    def run_span(task: Any, name: str, problem: domain_pb2.Problem) -> AbstractContextManager[Span]:
        """The task's span: the child of the span that sent it (its ``traceparent``
        header, which Celery hands over as an attribute of the request)."""
        tracing = tracing_here()
        if not tracing.enabled:
            return tracing.span(name)
        carrier = {
            key: value
            for key in (TRACEPARENT, TRACESTATE)
            if isinstance(value := task.request.get(key), str)
        }
        return tracing.span(
            name,
            kind="consumer",
            remote_parent=carrier,
            attributes={
                "messaging.system": "celery",
                "messaging.operation.type": "process",
                "messaging.message.id": task.request.id or "",
                "codejury.problem_id": problem.problem_id,
                "codejury.language": problem.language,
            },
        )

    @app.task(name=PRECOMPILE_TASK, bind=True)  # type: ignore[untyped-decorator]
    def precompile(
        task: Any, problem_b64: str, candidates_b64: list[str], limits: dict[str, Any]
    ) -> int:
        """Compile a batch's programs together into this worker's compile cache (Java:
        one javac JVM for all); returns how many. The runs follow as their own tasks."""
        problem = domain_pb2.Problem.FromString(base64.b64decode(problem_b64))
        with run_span(task, "sandbox.precompile", problem) as span:
            programs = [
                assemble(problem, domain_pb2.Candidate.FromString(base64.b64decode(c)).completion)
                for c in candidates_b64
            ]
            compiled = executor_here().precompile(problem.language, programs, Limits(**limits))
            span.set({"codejury.programs": len(programs), "codejury.compiled": compiled})
            return compiled

    @app.task(name=EXECUTE_TASK, bind=True)  # type: ignore[untyped-decorator]
    def execute(task: Any, problem_b64: str, candidate_b64: str, limits: dict[str, Any]) -> str:
        """Run one candidate in the sandbox; protobufs travel base64-encoded in JSON."""
        problem = domain_pb2.Problem.FromString(base64.b64decode(problem_b64))
        candidate = domain_pb2.Candidate.FromString(base64.b64decode(candidate_b64))
        with run_span(task, "sandbox.run", problem) as span:
            try:
                result = executor_here().execute(problem, candidate, Limits(**limits))
            except CodeJuryError as exc:
                # Requests are validated before they are queued; if one still fails here (a
                # toolchain removed under us), report it as our error, never as a label.
                result = domain_pb2.ExecutionResult(
                    candidate_id=candidate.candidate_id,
                    status=domain_pb2.SANDBOX_ERROR,
                    detail=str(exc),
                )
            status = domain_pb2.ExecutionStatus.Name(result.status)
            span.set(
                {
                    "codejury.candidate_id": candidate.candidate_id,
                    "codejury.status": status,
                    "codejury.exit_code": result.exit_code,
                    "codejury.wall_ms": round(result.wall_time_ms, 1),
                    "codejury.compile_ms": round(result.compile_time_ms, 1),
                }
            )
            if result.status == domain_pb2.SANDBOX_ERROR:  # ours; a program's failure is not
                span.fail(f"SANDBOX_ERROR: {result.detail}"[:1000])
            return encode(result)

    @worker_process_shutdown.connect  # type: ignore[untyped-decorator]
    def close_sandboxes(**_: Any) -> None:
        """Warm sandboxes die with the pool process; their cgroups must be removed. Its
        spans are exported before it goes (a pool process leaves without atexit)."""
        for executor in executors.values():
            executor.sandbox.close()
        for tracing in tracers.values():
            tracing.close()

    return app
