"""Executor fixtures: every executor test runs cold and warm (the sandboxes themselves are
in tests/integration/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from codejury.execution.cgroups import CGROUP_ROOT
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.sandbox import Limits, Sandbox


@pytest.fixture(scope="session", params=["cold", "warm"])
def executor(
    request: pytest.FixtureRequest, sandbox: Sandbox, warm_sandbox: Sandbox, cache_root: Path
) -> Executor:
    """Every executor test runs with sandboxes started per run and from the warm pool."""
    return Executor(
        sandbox if request.param == "cold" else warm_sandbox,
        ExecutorConfig(
            cache_dir=cache_root / "executor", default_limits=Limits(timeout_s=10), parallelism=2
        ),
    )


def leftover_runs(cgroup_parent: str, *, allow: int = 0) -> list[Path]:
    """Run cgroups under this session's parent beyond ``allow`` (warm sandboxes hold one
    each while they wait for a program)."""
    found = sorted(CGROUP_ROOT.glob(f"pids/{cgroup_parent}/run-*")) or sorted(
        CGROUP_ROOT.glob(f"{cgroup_parent}/run-*")
    )
    return found[allow:]
