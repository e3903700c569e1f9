"""Training integration fixtures: a real sandboxed executor (bubblewrap + cgroups), skipped
with a reason where it is unavailable, and the benchmark data dir."""

from __future__ import annotations

import os
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

DATA_DIR = Path(
    os.environ.get("CODEJURY_DATA_DIR", Path(__file__).parents[3].parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "mbxp").is_dir():
        pytest.skip(f"no MBXP data under {DATA_DIR}: set CODEJURY_DATA_DIR to use it")
    return DATA_DIR


@pytest.fixture(scope="session")
def training_executor() -> Iterator[Executor]:
    """A sandboxed executor under this session's own parent cgroup, removed afterwards."""
    parent = f"codejury-test-train-{uuid.uuid4().hex[:8]}"
    sandbox = Sandbox(SandboxConfig(cgroup_parent=parent, warm_pool=2))
    try:
        sandbox.check()
    except SandboxUnavailableError as exc:
        pytest.skip(f"sandbox unavailable here: {exc}")
    cache = Path(tempfile.mkdtemp(prefix="codejury-test-train-cache-"))
    cache.chmod(0o755)  # the sandbox user mounts build dirs from here
    try:
        yield Executor(
            sandbox,
            ExecutorConfig(cache_dir=cache, default_limits=Limits(timeout_s=10), parallelism=2),
        )
    finally:
        sandbox.close()
        shutil.rmtree(cache, ignore_errors=True)
        sweep_stale(parent)
        version = detect_version()
        dirs = [CGROUP_ROOT / parent] if version == "v2" else list(CGROUP_ROOT.glob(f"*/{parent}"))
        for directory in dirs:
            if directory.exists():
                directory.rmdir()
