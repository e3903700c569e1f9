"""Builds the sandbox and executor from settings (the one place that reads them)."""

from __future__ import annotations

from codejury.core.settings import Settings
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.sandbox import Limits, Sandbox, SandboxConfig


def default_limits(settings: Settings) -> Limits:
    ex = settings.execution
    return Limits(
        timeout_s=ex.timeout_s,
        memory_bytes=ex.memory_mb << 20,
        max_processes=ex.max_processes,
        max_output_bytes=ex.max_output_kb << 10,
    )


def make_executor(settings: Settings) -> Executor:
    ex = settings.execution
    sandbox = Sandbox(
        SandboxConfig(
            uid=ex.sandbox_uid,
            gid=ex.sandbox_gid,
            cgroup_parent=ex.cgroup_parent,
            unsafe_no_sandbox=ex.unsafe_no_sandbox,
        )
    )
    sandbox.check()
    return Executor(
        sandbox,
        ExecutorConfig(
            cache_dir=(ex.cache_dir or settings.run_dir / "cache" / "execution").resolve(),
            default_limits=default_limits(settings),
            parallelism=ex.parallelism,
            max_program_bytes=ex.max_program_kb << 10,
            use_pch=ex.use_pch,
        ),
    )
