"""Evaluation runs programs through a real, cold sandbox (tests/integration/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.sandbox import Limits, Sandbox


@pytest.fixture(scope="session")
def executor(sandbox: Sandbox, cache_root: Path) -> Executor:
    return Executor(
        sandbox,
        ExecutorConfig(
            cache_dir=cache_root / "evaluation", default_limits=Limits(timeout_s=10), parallelism=2
        ),
    )
