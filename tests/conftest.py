"""Fixtures shared by every test: no hub, no leaked CODEJURY_* settings, tiny models."""

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


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may reach the Hugging Face hub, even by accident (it is unreachable here
    anyway, and a test that needed it would hang on the network, not fail)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        import huggingface_hub.constants
    except ImportError:  # no model extra installed: nothing could reach the hub
        yield
        return
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random causal LM with a chat template (see ``codejury.generation.tiny``)."""
    from codejury.generation.tiny import build_model_dir

    return build_model_dir(tmp_path_factory.mktemp("tiny-lm") / "tiny-chat-lm")


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT reward-model backbone (see ``codejury.reranking.backbones``)."""
    from codejury.reranking.backbones import build_tiny_backbone

    return build_tiny_backbone(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"run_dir": tmp_path / "run"})
