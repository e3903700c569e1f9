"""A real sandboxed executor (bubblewrap and cgroups), skipped with a reason where unavailable.

The execution suite's fixtures live in its own directory's conftest; this is the part of
them that evaluation needs: one cold sandbox, no warm pool to sweep.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from codejury.execution.cgroups import CGROUP_ROOT, detect_version
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
    dirs = [CGROUP_ROOT / name] if version == "v2" else list(CGROUP_ROOT.glob(f"*/{name}"))
    for directory in dirs:
        if directory.exists():
            directory.rmdir()  # fails loudly if a run's group was left behind


@pytest.fixture(scope="session")
def executor(cgroup_parent: str) -> Iterator[Executor]:
    sandbox = Sandbox(SandboxConfig(cgroup_parent=cgroup_parent))
    try:
        sandbox.check()
    except SandboxUnavailableError as exc:
        pytest.skip(f"sandbox unavailable here: {exc}")
    # A compile cache the sandbox user can reach (pytest's tmp dirs are root-only).
    cache = Path(tempfile.mkdtemp(prefix="codejury-test-cache-"))
    cache.chmod(0o755)
    yield Executor(
        sandbox,
        ExecutorConfig(
            cache_dir=cache / "executor", default_limits=Limits(timeout_s=10), parallelism=2
        ),
    )
    shutil.rmtree(cache, ignore_errors=True)
