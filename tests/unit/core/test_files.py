"""Durable writes leave the new content and nothing else."""

from __future__ import annotations

from pathlib import Path

from codejury.core.files import fsync_dir, write_text_atomic


def test_an_atomic_write_replaces_the_file_and_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "r" / "status.json"
    write_text_atomic(target, '{"phase": "Pending"}')
    write_text_atomic(target, '{"phase": "Training"}')
    assert target.read_text() == '{"phase": "Training"}'
    assert [p.name for p in target.parent.iterdir()] == ["status.json"]
    fsync_dir(target.parent)  # a folder can be synced (no error on a directory fd)
