"""Sandbox fixtures: real bubblewrap and cgroups, skipped with a reason where unavailable."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from codejury.execution.cgroups import CGROUP_ROOT, detect_version, sweep_stale
from codejury.execution.errors import SandboxUnavailableError
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.sandbox import Limits, Sandbox, SandboxConfig


@pytest.fixture(scope="session")
def cgroup_parent() -> Iterator[str]:
    """A parent cgroup of this session's own, so leftovers are attributable to us."""
    name = f"codejury-test-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        version = detect_version()
    except SandboxUnavailableError:
        return
    # Celery pool processes that held warm sandboxes are gone by now: their empty groups
    # are swept the way a restarted worker sweeps them; anything else left fails below.
    sweep_stale(name)
    dirs = [CGROUP_ROOT / name] if version == "v2" else list(CGROUP_ROOT.glob(f"*/{name}"))
    for directory in dirs:
        if directory.exists():
            directory.rmdir()  # fails loudly if a run's group was left behind


@pytest.fixture(scope="session")
def sandbox(cgroup_parent: str) -> Sandbox:
    box = Sandbox(SandboxConfig(cgroup_parent=cgroup_parent))
    try:
        box.check()
    except SandboxUnavailableError as exc:
        pytest.skip(f"sandbox unavailable here: {exc}")
    return box


@pytest.fixture(scope="session")
def cache_root() -> Iterator[Path]:
    """A compile cache the sandbox user can reach (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="codejury-test-cache-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def warm_sandbox(sandbox: Sandbox, cgroup_parent: str) -> Iterator[Sandbox]:
    """The same sandbox with two sandboxes kept started ahead of demand."""
    box = Sandbox(SandboxConfig(cgroup_parent=cgroup_parent, warm_pool=2))
    box.check()
    yield box
    box.close()


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
