"""A trained reward model becomes a new reranker version, with a manifest naming its
parent, the self-training iteration, the data snapshot and the held-out metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from codejury.reranking.manifest import Manifest, check_version_id
from codejury.reranking.registry import ModelRegistry


def new_version_id(iteration: int, snapshot_id: str, *, now: datetime | None = None) -> str:
    """``rm-i<iteration>-<snapshot hash prefix>-<UTC time>``,
    e.g. ``rm-i1-3f9a0c12-20250301T120000``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return check_version_id(f"rm-i{iteration}-{snapshot_id.removeprefix('snap-')[:8]}-{stamp}")


def register_reward_model(
    registry: ModelRegistry,
    model_dir: Path,
    *,
    version_id: str,
    parent: str,
    iteration: int,
    snapshot_id: str,
    metrics: dict[str, float],
) -> Manifest:
    """Register ``model_dir`` under ``version_id``; the backbone is inherited from the parent."""
    parent_manifest = registry.get(parent)  # UnknownVersionError names the known ones
    manifest = Manifest(
        version_id=version_id,
        parent=parent,
        iteration=iteration,
        data_snapshot_id=snapshot_id,
        metrics=metrics,
        backbone=parent_manifest.backbone,
    )
    return registry.register(model_dir, manifest)
