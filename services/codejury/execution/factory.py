"""Builds the sandbox and executor from settings (the one place that reads them)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from codejury.core.settings import Settings
from codejury.core.tracing import NO_TRACING, Tracing
from codejury.execution.backends import CeleryBackend, ExecutionBackend, LocalBackend
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.sandbox import Limits, Sandbox, SandboxConfig


def ceiling_limits(settings: Settings) -> Limits:
    """The most a request may ask for (``execution.ceiling_*``)."""
    ex = settings.execution
    return Limits(
        timeout_s=ex.ceiling_timeout_s,
        memory_bytes=ex.ceiling_memory_mb << 20,
        max_processes=ex.ceiling_processes,
        max_output_bytes=ex.ceiling_output_kb << 10,
    )


def default_limits(settings: Settings) -> Limits:
    ex = settings.execution
    return Limits(
        timeout_s=ex.timeout_s,
        memory_bytes=ex.memory_mb << 20,
        max_processes=ex.max_processes,
        max_output_bytes=ex.max_output_kb << 10,
    )


SHARED_CACHE = Path("/var/cache/codejury/execution")


def cache_dir(settings: Settings) -> Path:
    """The compile cache. Sandboxed builds are bind-mounted by the unprivileged sandbox
    user, so the default is a system cache dir every user can traverse (the run dir may
    sit under a private home); without the sandbox the run dir is fine."""
    ex = settings.execution
    if ex.cache_dir is not None:
        return ex.cache_dir.resolve()
    if not ex.unsafe_no_sandbox and os.geteuid() == 0:
        return SHARED_CACHE
    return (settings.run_dir / "cache" / "execution").resolve()


def make_executor(settings: Settings, *, warm: bool = True) -> Executor:
    """The executor for this process; ``warm=False`` for one-off runs (no warm pool)."""
    ex = settings.execution
    sandbox = Sandbox(
        SandboxConfig(
            uid=ex.sandbox_uid,
            gid=ex.sandbox_gid,
            cgroup_parent=ex.cgroup_parent,
            unsafe_no_sandbox=ex.unsafe_no_sandbox,
            warm_pool=ex.warm_sandboxes if warm else 0,
            hardened=ex.sandbox_hardening,
        )
    )
    sandbox.check()
    return Executor(
        sandbox,
        ExecutorConfig(
            cache_dir=cache_dir(settings),
            default_limits=default_limits(settings),
            parallelism=ex.parallelism,
            max_program_bytes=ex.max_program_kb << 10,
            use_pch=ex.use_pch,
            typescript_check=ex.typescript_check,
        ),
    )


BackendMode = Literal["worker", "celery", "in-process"]


@contextlib.contextmanager
def open_backend(
    settings: Settings, mode: BackendMode, *, tracing: Tracing = NO_TRACING
) -> Iterator[ExecutionBackend]:
    """Where a batch job's programs run, for the ``with`` block:

    - ``celery``: the Celery workers already serving ``celery.broker_url``;
    - ``worker``: a Celery worker started here for the block (one machine, or a Job
      without a worker fleet), stopped after it;
    - ``in-process``: this process's own sandbox, no Celery.

    ``tracing``: Celery tasks carry the calling span to the workers' spans of the runs.
    """
    if mode == "in-process":
        executor = make_executor(settings)
        try:
            yield LocalBackend(executor)
        finally:
            executor.sandbox.close()
        return
    from codejury.execution.celery_app import make_celery_app
    from codejury.execution.local_worker import LocalWorker

    app = make_celery_app(settings)
    backend = CeleryBackend(app, timeout_s=settings.celery.result_timeout_s, tracing=tracing)
    if mode == "celery":
        yield backend
        return
    with LocalWorker(settings, app):
        yield backend
