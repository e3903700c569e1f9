"""The model registry: versions round-trip with their manifests; marks; clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from codejury.core.errors import ConfigurationError
from codejury.reranking.errors import (
    CorruptVersionError,
    InvalidRequestError,
    UnknownVersionError,
    VersionConflictError,
)
from codejury.reranking.manifest import Manifest
from codejury.reranking.registry import ModelRegistry


def _model_dir(path: Path) -> Path:
    """A stand-in model directory: the registry moves files, it does not load them."""
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "bert"}')
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "tokenizer.json").write_text("{}")
    return path


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


def test_a_version_round_trips_with_its_manifest_and_files(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    source = _model_dir(tmp_path / "trained")
    registry.register(_model_dir(tmp_path / "base"), Manifest(version_id="rr-0", backbone="b"))
    manifest = Manifest(
        version_id="rr-1",
        parent="rr-0",
        iteration=1,
        data_snapshot_id="snap-42",
        metrics={"pass@1": 0.25, "hard_negatives": 17.0},
        created_at=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        backbone="sentence-transformers/all-MiniLM-L6-v2",
    )
    registry.register(source, manifest)

    again = ModelRegistry.from_uri(f"file://{registry.root}")
    assert again.get("rr-1") == manifest
    files = again.model_dir("rr-1")
    assert (files / "model.safetensors").read_bytes() == b"weights"
    assert (files / "tokenizer.json").exists()
    assert [m.version_id for m in again.versions()] == ["rr-1", "rr-0"]  # by created_at
    assert not (registry.root / ".staging").exists() or not any(
        (registry.root / ".staging").iterdir()
    )


def test_versions_are_immutable_and_parents_must_exist(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    source = _model_dir(tmp_path / "m")
    registry.register(source, Manifest(version_id="a", backbone="b"))
    with pytest.raises(VersionConflictError, match=r"'a' is already registered.*new id"):
        registry.register(source, Manifest(version_id="a", backbone="b"))
    with pytest.raises(UnknownVersionError, match=r"'ghost' is not registered.*known: a"):
        registry.register(source, Manifest(version_id="c", parent="ghost", backbone="b"))


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", "stable", "-x", "x" * 64])
def test_version_ids_are_safe_names(bad: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"version"):
        Manifest(version_id=bad, backbone="b")


def test_channels_stable_and_canary(registry: ModelRegistry, tmp_path: Path) -> None:
    source = _model_dir(tmp_path / "m")
    for version in ("v1", "v2", "v3"):
        registry.register(source, Manifest(version_id=version, backbone="b"))
    assert registry.channels().stable is None
    with pytest.raises(UnknownVersionError, match=r"no version is marked stable.*mark one"):
        registry.resolve("stable")

    registry.mark_stable("v1")
    registry.mark_canary("v2")
    assert (registry.resolve("stable"), registry.resolve("canary")) == ("v1", "v2")
    assert registry.resolve("v3") == "v3"
    with pytest.raises(VersionConflictError, match=r"already stable"):
        registry.mark_canary("v1")

    channels = registry.mark_stable("v2")  # promoting the canary clears it
    assert (channels.stable, channels.canary) == ("v2", None)
    assert json.loads((registry.root / "channels.json").read_text()) == {
        "stable": "v2",
        "canary": None,
    }
    with pytest.raises(UnknownVersionError):
        registry.mark_canary("nope")


def test_corrupt_versions_are_named_with_the_fix(registry: ModelRegistry, tmp_path: Path) -> None:
    source = _model_dir(tmp_path / "m")
    for version in ("no-weights", "bad-manifest", "ok"):
        registry.register(source, Manifest(version_id=version, backbone="b"))
    (registry.root / "versions" / "no-weights" / "model" / "model.safetensors").unlink()
    (registry.root / "versions" / "bad-manifest" / "manifest.json").write_text("{not json")

    with pytest.raises(CorruptVersionError, match=r"'no-weights'.*has no weights.*register it"):
        registry.model_dir("no-weights")
    with pytest.raises(CorruptVersionError, match=r"not a valid manifest.*re-register"):
        registry.get("bad-manifest")
    # Listing still works and skips what it cannot read.
    assert [m.version_id for m in registry.versions()] == ["no-weights", "ok"]


def test_registering_a_directory_without_a_model_is_refused(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorruptVersionError, match=r"no config.json.*save_pretrained"):
        registry.register(empty, Manifest(version_id="x", backbone="b"))
    assert registry.versions() == []


def test_object_storage_uris_are_a_configuration_error_for_now() -> None:
    with pytest.raises(ConfigurationError, match=r"REGISTRY_URI.*'s3'.*file://"):
        ModelRegistry.from_uri("s3://bucket/rerankers")
    assert ModelRegistry.from_uri("/tmp/x").root == Path("/tmp/x")
