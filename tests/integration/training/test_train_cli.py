"""``codejury train`` as a user runs it: snapshot, stats, reward-model on a tiny backbone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from codejury.reranking.registry import ModelRegistry
from codejury.training.records import LabelledCandidate, Source
from codejury.training.store import TrainingStore


def _codejury(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    result = subprocess.run(
        [sys.executable, "-m", "codejury", "--run-dir", str(run_dir), *args],
        capture_output=True,
        text=True,
        env={**env, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


# Slow lane (22 s): the reward-model CLI end to end; the default lane keeps the training
# store and reward-model tests (tests/integration/training).
@pytest.mark.slow
def test_snapshot_stats_and_reward_model_training(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _codejury(
        run_dir, "reranker", "init", "--version", "rr-0", "--backbone", "tiny", "--mark-stable"
    )
    # A deployment's init step runs on every start: the second time is success, unchanged.
    again = _codejury(
        run_dir, "reranker", "init", "--version", "rr-0", "--backbone", "tiny", "--exist-ok"
    )
    assert "rr-0 is already registered" in again.stdout
    rows = []
    for n in range(1, 21):
        prompt = f"def task_{n}(a, b):\n"
        rows.append(
            LabelledCandidate(
                f"MBPP/{n}",
                "python",
                "    return a + b\n",
                "PASSED",
                Source.CANONICAL,
                prompt=prompt,
            )
        )
        rows += [
            LabelledCandidate(f"MBPP/{n}", "python", body, "FAILED", Source.MUTATION, prompt=prompt)
            for body in ("    return a - b\n", "    pass\n")
        ]
    TrainingStore(run_dir / "training" / "data").append(rows)

    snapshot = _codejury(run_dir, "train", "snapshot").stdout
    assert "snapshot snap-" in snapshot and "60 rows" in snapshot
    snapshot_id = snapshot.split()[1].rstrip(":")
    stats = _codejury(run_dir, "train", "stats", "--snapshot", "latest").stdout
    assert "canonical" in stats and "mutation" in stats and snapshot_id in stats

    trained = _codejury(
        run_dir,
        "train",
        "reward-model",
        "--epochs",
        "1",
        "--learning-rate",
        "1e-3",
        "--version",
        "rr-1",
    ).stdout
    assert "heldout_pairwise_accuracy" in trained and "registered rr-1" in trained
    manifest = ModelRegistry(run_dir / "reranking" / "registry").get("rr-1")
    assert (manifest.parent, manifest.iteration, manifest.data_snapshot_id) == (
        "rr-0",
        1,
        snapshot_id,
    )
    assert "heldout_pass_at_1" in manifest.metrics and manifest.metrics["train_pairs"] > 0
