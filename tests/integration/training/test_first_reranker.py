"""The first trained reranker (what `codejury up`, `eval` and `demo` serve on a fresh run
directory instead of an untrained head): cold start into an empty store, the reward
model trained from the bare head, registered as iteration 0 and made stable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from codejury.core.settings import load_settings, settings_env
from codejury.reranking.bootstrap import ensure_stable
from codejury.reranking.registry import ModelRegistry
from codejury.training.first_reranker import needs_training, train_first
from codejury.training.records import Source
from codejury.training.store import TrainingStore

pytest.importorskip("trl", reason="training the reward model needs the train extra")


def test_a_fresh_registry_gets_a_trained_stable_reranker_once(
    tmp_path: Path, data_dir: Path
) -> None:
    settings = load_settings(
        {
            "run_dir": tmp_path / "run",
            "data_dir": data_dir,
            "pipeline": {"reranker_backbone": "tiny"},
            "training": {
                "cold_start_problems": 12,
                "cold_start_mutants": 2,
                "epochs": 1,
                "batch_size": 8,
                "learning_rate": 1e-3,
                "torch_threads": 1,
            },
        }
    )
    registry = ModelRegistry(settings.run_dir / "reranking" / "registry")
    assert needs_training(registry)  # empty
    ensure_stable(registry, "tiny")
    assert needs_training(registry)  # an untrained head is stable: still needs training
    lines: list[str] = []
    manifest = train_first(settings, registry, data_dir, backbone="tiny", report=lines.append)

    assert registry.channels().stable == manifest.version_id
    assert manifest.version_id.startswith("rm-i0-") and manifest.iteration == 0
    assert manifest.parent == "v0" and registry.get("v0").untrained
    assert not manifest.untrained and not needs_training(registry)
    assert manifest.metrics["train_pairs"] > 0
    assert 0.0 <= manifest.metrics["heldout_pass_at_1"] <= 1.0
    rows = TrainingStore.from_settings(settings).rows()
    assert {r.source for r in rows} == {Source.CANONICAL, Source.MUTATION}
    assert any("cold start" in line for line in lines)
    assert any(f"registered {manifest.version_id} as stable" in line for line in lines)

    # the command `up` and `demo` run: a trained stable version is left alone
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    env |= settings_env(settings) | {"COLUMNS": "200"}
    again = subprocess.run(
        [sys.executable, "-m", "codejury", "train", "first-reranker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert f"stable reranker {manifest.version_id} is trained: nothing to do" in again.stdout
    assert {m.version_id for m in registry.versions()} == {"v0", manifest.version_id}


def test_training_past_its_timeout_warns_with_the_setting_to_raise(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cold start bigger than the wait (bench method --cold-start-problems 100 took over
    the default 30 min on 2 busy cores) ends in a warning that names what to raise, and
    the deployment goes on with the untrained head rather than hanging."""
    from codejury.cli.training import ensure_first_reranker

    settings = load_settings(
        {
            "run_dir": tmp_path / "run",
            "data_dir": data_dir,
            "pipeline": {"reranker_backbone": "tiny", "first_reranker_timeout_s": 0.5},
        }
    )
    ensure_first_reranker(settings)
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "training the first reranker failed: it took over 0.5s" in err
    assert "raise CODEJURY_PIPELINE__FIRST_RERANKER_TIMEOUT_S" in err
    assert needs_training(ModelRegistry(settings.run_dir / "reranking" / "registry"))
