"""Reranking fixtures: a registry of tiny random reward models and real KServe model
servers (child processes on free loopback ports), stopped at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from codejury.core.settings import Settings, load_settings
from codejury.reranking.backbones import build_tiny_backbone
from codejury.reranking.launcher import ModelServerProcess, ServedModel, stop_all
from codejury.reranking.manifest import Manifest
from codejury.reranking.registry import ModelRegistry

STABLE, CANARY = "tiny-stable", "tiny-canary"
CORRUPT = "tiny-corrupt"  # files present, weights unreadable
MISSING = "tiny-missing"  # weights file gone
IDLE = "tiny-idle"  # healthy, registered, served by nobody


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("reranking")
    registry = ModelRegistry(root / "registry")
    stable_model = build_tiny_backbone(root / "stable-model", seed=0)
    canary_model = build_tiny_backbone(root / "canary-model", seed=1)
    registry.register(stable_model, Manifest(version_id=STABLE, backbone="tiny-random-bert"))
    registry.register(
        canary_model,
        Manifest(version_id=CANARY, parent=STABLE, iteration=1, backbone="tiny-random-bert"),
    )
    for version in (CORRUPT, MISSING, IDLE):
        registry.register(stable_model, Manifest(version_id=version, backbone="tiny-random-bert"))
    files = root / "registry" / "versions"
    (files / CORRUPT / "model" / "model.safetensors").write_bytes(b"\0" * 128)
    (files / MISSING / "model" / "model.safetensors").unlink()
    registry.mark_stable(STABLE)
    registry.mark_canary(CANARY)
    return registry


@pytest.fixture(scope="session")
def reranking_settings(
    tmp_path_factory: pytest.TempPathFactory, tiny_registry: ModelRegistry
) -> Settings:
    return load_settings(
        {
            "run_dir": tmp_path_factory.mktemp("reranking-run"),
            "reranking": {
                "registry_uri": str(tiny_registry.root),
                "batch_size": 8,
                "max_candidate_kb": 4,
                "request_timeout_s": 30,
                "model_startup_timeout_s": 120,
            },
        }
    )


@pytest.fixture(scope="session")
def model_servers(
    reranking_settings: Settings, tiny_registry: ModelRegistry
) -> Iterator[dict[str, ServedModel]]:
    """The stable and the canary version, each behind its own KServe model server."""
    processes = {
        version: ModelServerProcess(
            reranking_settings, version, registry_uri=str(tiny_registry.root)
        )
        for version in (STABLE, CANARY)
    }
    try:
        for process in processes.values():
            process.launch()  # both start at once
        yield {version: process.wait_ready() for version, process in processes.items()}
    finally:
        stop_all(processes.values())
