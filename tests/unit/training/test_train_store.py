"""The training data store: Parquet parts, content-addressed snapshots, hard negatives."""

from __future__ import annotations

from pathlib import Path

import pytest
from codejury.training.errors import (
    CorruptSnapshotError,
    SnapshotNotFoundError,
    StoreWriteError,
    TrainingDataError,
)
from codejury.training.queries import hard_negatives, stats
from codejury.training.records import LabelledCandidate, Source
from codejury.training.store import TrainingStore

from tests.unit.training.train_rows import row


def _rows() -> list[LabelledCandidate]:
    return [
        row("MBPP/1", "    return a + b\n", source=Source.CANONICAL),
        row("MBPP/1", "    return a - b\n", status="FAILED", source=Source.MUTATION),
        row("MBPP/2", "    return 0\n", status="TIMEOUT", score=1.5, request_id="r1"),
        row("MBPP/2", "    return x\n", score=0.5, request_id="r1", candidate_id="c2"),
        row("MBCPP/2", "  return 1;\n", language="cpp", status="COMPILE_ERROR"),
    ]


def test_rows_round_trip_through_parquet_parts(tmp_path: Path) -> None:
    store = TrainingStore(tmp_path / "store")
    rows = _rows()
    store.append(rows[:2])
    store.append(rows[2:])

    assert len(store.parts()) == 2
    assert sorted(store.rows(), key=lambda r: r.row_id) == sorted(rows, key=lambda r: r.row_id)
    back = {r.row_id: r for r in store.rows()}
    scored = back[rows[2].row_id]
    assert scored.score == 1.5 and scored.score_version == "v1" and not scored.passed
    assert back[rows[0].row_id].source is Source.CANONICAL and back[rows[0].row_id].passed
    assert not list((tmp_path / "store" / "parts").glob(".*"))  # no temporary file left


def test_snapshot_id_depends_on_content_only(tmp_path: Path) -> None:
    rows = _rows()
    one, two, three = (TrainingStore(tmp_path / name) for name in ("one", "two", "three"))
    one.append(rows)
    two.append(rows[3:])
    two.append(list(reversed(rows[:3])))
    two.append(rows[:1])  # a redelivered row is kept once
    three.append([*rows[:-1], row("MBPP/9", "    pass\n", status="FAILED")])

    first = one.snapshot()
    assert first.snapshot_id == two.snapshot().snapshot_id
    assert first.snapshot_id != three.snapshot().snapshot_id
    assert first.snapshot_id.startswith("snap-") and first.info.rows == len(rows)
    # Snapshotting again makes nothing new; the snapshot is immutable once written.
    assert one.snapshot().snapshot_id == first.snapshot_id
    assert [s.snapshot_id for s in one.snapshots()] == [first.snapshot_id]
    one.append([row("MBPP/3", "    return 3\n")])
    later = one.snapshot()
    assert later.snapshot_id != first.snapshot_id
    assert one.load(first.snapshot_id).rows == first.rows
    assert one.load("latest").snapshot_id == later.snapshot_id


def test_snapshot_lookup_errors_name_the_fix(tmp_path: Path) -> None:
    store = TrainingStore(tmp_path / "store")
    with pytest.raises(SnapshotNotFoundError, match=r"no snapshot .* `codejury train snapshot`"):
        store.load("latest")
    with pytest.raises(TrainingDataError, match="'nope' is not a snapshot id: give 'snap-'"):
        store.load("nope")
    store.append(_rows())
    snapshot = store.snapshot()
    with pytest.raises(
        SnapshotNotFoundError, match=rf"snap-0000000000000000.*{snapshot.snapshot_id}"
    ):
        store.load("snap-0000000000000000")
    # A snapshot edited by hand no longer matches its id.
    other = TrainingStore(tmp_path / "other")
    other.append(_rows()[:1])
    rows_file = store.snapshots_dir / snapshot.snapshot_id / "rows.parquet"
    rows_file.write_bytes((other.parts()[0]).read_bytes())
    with pytest.raises(CorruptSnapshotError, match="no longer hash to its id"):
        store.load(snapshot.snapshot_id)


def test_a_part_that_cannot_be_written_is_a_temporary_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "parts").write_text("a file where the parts folder goes")
    store = TrainingStore(tmp_path / "store")
    with pytest.raises(StoreWriteError, match=r"cannot write 5 row.*CODEJURY_TRAINING__STORE_DIR"):
        store.append(_rows())


def test_sandbox_errors_and_unknown_statuses_never_become_labels() -> None:
    for status in ("SANDBOX_ERROR", "EXECUTION_STATUS_UNSPECIFIED", "BROKEN"):
        with pytest.raises(TrainingDataError, match=rf"status '{status}' .* leave such rows out"):
            row(status=status)


def test_hard_negatives_are_failing_candidates_scored_above_a_passing_one() -> None:
    rows = [
        # request r1: pass at 0.5 and 2.0; failing at 1.0 (hard) and 0.1 (not hard)
        row("MBPP/2", "    return x\n", score=0.5, request_id="r1"),
        row("MBPP/2", "    return y\n", score=2.0, request_id="r1"),
        row("MBPP/2", "    return 1\n", status="FAILED", score=1.0, request_id="r1"),
        row("MBPP/2", "    return 2\n", status="FAILED", score=0.1, request_id="r1"),
        # request r2: the failing one is above, but there is no passing candidate to beat
        row("MBPP/2", "    return 3\n", status="FAILED", score=9.0, request_id="r2"),
        # another problem in the same request id space: scores are not compared across
        row("MBPP/3", "    return 4\n", status="FAILED", score=9.0, request_id="r1"),
        # unscored failing candidates are never hard negatives
        row("MBPP/2", "    return 5\n", status="FAILED", request_id="r1"),
    ]
    hard = hard_negatives(rows)
    assert [r.program for r in hard] == ["    return 1\n"]
    assert stats(rows).hard_negatives == {"python": 1}


def test_stats_count_rows_by_language_label_and_source() -> None:
    result = stats(_rows())
    assert result.rows == 5
    assert result.by_language_label_source[("python", "passed", "canonical")] == 1
    assert result.by_language_label_source[("python", "failed", "mutation")] == 1
    assert result.by_language_label_source[("cpp", "failed", "generator")] == 1
    assert result.problems == {"cpp": 1, "python": 2}
    assert result.by_status["COMPILE_ERROR"] == 1
