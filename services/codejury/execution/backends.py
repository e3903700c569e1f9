"""Where batches run: in this process (CLI, tests) or fanned out to Celery workers."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Protocol

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError

from codejury.execution.errors import WorkersUnavailableError
from codejury.execution.executor import Executor
from codejury.execution.sandbox import Limits
from codejury.proto.v1 import domain_pb2

EXECUTE_TASK = "codejury.execute"


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
    """One Celery task per candidate, so every worker process of every worker helps."""

    def __init__(self, app: Celery, *, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    def execute_batch(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        limits: Limits,
    ) -> list[domain_pb2.ExecutionResult]:
        problem_data = encode(problem)
        limits_data = asdict(limits)
        pending = [
            self.app.send_task(EXECUTE_TASK, args=[problem_data, encode(c), limits_data])
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
                p.forget()
