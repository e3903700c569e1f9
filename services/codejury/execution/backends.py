"""Where batches run: in this process (CLI, tests) or fanned out to Celery workers."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Protocol

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError

from codejury.core.logging import get_logger
from codejury.core.tracing import NO_TRACING, Tracing
from codejury.execution.errors import WorkersUnavailableError
from codejury.execution.executor import Executor
from codejury.execution.languages import get_language
from codejury.execution.sandbox import Limits
from codejury.proto.v1 import domain_pb2

EXECUTE_TASK = "codejury.execute"
PRECOMPILE_TASK = "codejury.precompile"

log = get_logger(__name__)


class ExecutionBackend(Protocol):
    def execute_batch(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        limits: Limits,
    ) -> list[domain_pb2.ExecutionResult]: ...


class LocalBackend:
    """Runs in this process with the executor's own thread pool."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def execute_batch(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        limits: Limits,
    ) -> list[domain_pb2.ExecutionResult]:
        return self.executor.execute_batch(problem, candidates, limits)


def encode(message: Any) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


def decode_result(data: str) -> domain_pb2.ExecutionResult:
    return domain_pb2.ExecutionResult.FromString(base64.b64decode(data))


class CeleryBackend:
    """One Celery task per candidate, so every worker process of every worker helps.
    Traced, each task's headers carry the caller's span (``traceparent``): the worker's
    span of the run is its child."""

    def __init__(self, app: Celery, *, timeout_s: float, tracing: Tracing = NO_TRACING) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self._tracing = tracing

    def execute_batch(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        limits: Limits,
    ) -> list[domain_pb2.ExecutionResult]:
        problem_data = encode(problem)
        limits_data = asdict(limits)
        headers = self._tracing.headers() or None
        if len(candidates) > 1 and get_language(problem.language).batch_compile is not None:
            self._precompile(problem_data, candidates, limits_data, limits, headers)
        pending = [
            self.app.send_task(
                EXECUTE_TASK, args=[problem_data, encode(c), limits_data], headers=headers
            )
            for c in candidates
        ]
        # A batch's runs execute in parallel; its deadline covers the slowest plus queueing.
        deadline = self.timeout_s + limits.timeout_s
        try:
            return [decode_result(p.get(timeout=deadline, interval=0.01)) for p in pending]
        except CeleryTimeoutError as exc:
            for p in pending:
                p.revoke()
            raise WorkersUnavailableError(
                f"no sandbox worker returned {len(pending)} result(s) within {deadline:g}s: "
                "start workers with `codejury worker` or raise CODEJURY_CELERY__RESULT_TIMEOUT_S",
                delay_s=2.0,
            ) from exc
        finally:
            for p in pending:
                # a result that never arrived has nothing to forget (the file backend
                # raises for it), and must not hide the error above
                with contextlib.suppress(OSError):
                    p.forget()

    def _precompile(
        self,
        problem_data: str,
        candidates: Sequence[domain_pb2.Candidate],
        limits_data: dict[str, Any],
        limits: Limits,
        headers: dict[str, str] | None,
    ) -> None:
        """Have one worker compile the batch's programs together (Java: one javac JVM)
        before the runs fan out: workers sharing its compile cache (one machine, or a
        shared volume) then only run them. Best effort: a run whose program is not in
        its worker's cache compiles it itself, so a late or failed batch loses nothing."""
        task = self.app.send_task(
            PRECOMPILE_TASK,
            args=[problem_data, [encode(c) for c in candidates], limits_data],
            headers=headers,
        )
        try:
            task.get(timeout=self.timeout_s + limits.timeout_s, interval=0.01)
        except Exception as exc:  # any failure: the runs compile on their own
            task.revoke()
            log.warning("execution.precompile_failed", error=str(exc) or type(exc).__name__)
        finally:
            with contextlib.suppress(OSError):
                task.forget()
