"""Training unit fixtures: labelled rows, and a tiny random reward model built offline."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codejury.reranking.backbones import build_tiny_backbone

    return build_tiny_backbone(tmp_path_factory.mktemp("tiny") / "model", seed=0)
