"""An iteration step's folder is written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from codejury.training.workdir import is_complete, read_result, write_result, writing_step


def test_a_step_appears_only_once_complete(tmp_path: Path) -> None:
    step = tmp_path / "it" / "reward"
    with writing_step(step) as out:
        (out / "model.bin").write_bytes(b"weights")
        write_result(out, {"snapshot_id": "snap-1"})
        assert not step.exists()  # still being written
    assert is_complete(step)
    assert read_result(step) == {"snapshot_id": "snap-1"}
    assert (step / "model.bin").read_bytes() == b"weights"
    assert [p.name for p in step.parent.iterdir()] == ["reward"]


def test_a_failed_step_leaves_nothing(tmp_path: Path) -> None:
    step = tmp_path / "it" / "ppo"
    with pytest.raises(ValueError, match="boom"), writing_step(step) as out:
        (out / "half.bin").write_bytes(b"x")
        raise ValueError("boom")
    assert not step.exists()
    assert list(step.parent.iterdir()) == []


def test_a_step_without_its_result_is_not_complete(tmp_path: Path) -> None:
    step = tmp_path / "it" / "sample"
    with pytest.raises(RuntimeError, match=r"without writing result\.json"), writing_step(step):
        pass
    assert not step.exists() and not is_complete(step)


def test_debris_of_a_killed_step_is_cleared_on_the_next_attempt(tmp_path: Path) -> None:
    step = tmp_path / "it" / "mine"
    debris = tmp_path / "it" / ".mine.partial"
    debris.mkdir(parents=True)
    (debris / "stale.jsonl").write_text("old")
    with writing_step(step) as out:
        assert list(out.iterdir()) == []
        write_result(out, {"ok": True})
    assert not debris.exists() and is_complete(step)
