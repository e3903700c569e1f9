"""Fixtures shared by every test: settings built from a temporary run directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from codejury.core.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _no_codejury_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests build their settings explicitly; the developer's CODEJURY_* must not leak in."""
    import os

    for name in [n for n in os.environ if n.startswith("CODEJURY_")]:
        monkeypatch.delenv(name)
    yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"run_dir": tmp_path / "run"})
