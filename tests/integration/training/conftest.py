"""Training integration fixtures: an executor on the shared warm sandbox, and the benchmark
data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.sandbox import Limits, Sandbox

DATA_DIR = Path(
    os.environ.get("CODEJURY_DATA_DIR", Path(__file__).parents[3].parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "mbxp").is_dir():
        pytest.skip(f"no MBXP data under {DATA_DIR}: set CODEJURY_DATA_DIR to use it")
    return DATA_DIR


@pytest.fixture(scope="session")
def training_executor(warm_sandbox: Sandbox, cache_root: Path) -> Executor:
    """A sandboxed executor with a warm pool (tests/integration/conftest.py)."""
    return Executor(
        warm_sandbox,
        ExecutorConfig(
            cache_dir=cache_root / "training", default_limits=Limits(timeout_s=10), parallelism=2
        ),
    )
