"""Generation fixtures: the hub is off limits, models are tiny and built here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the transformers backend needs the demo/train extra")


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may reach the Hugging Face hub, even by accident."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codejury.generation.tiny import build_model_dir

    return build_model_dir(tmp_path_factory.mktemp("tiny-lm") / "tiny-chat-lm")
