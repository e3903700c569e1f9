"""The training data store: labelled candidates as Parquet under the run directory.

Layout::

    <store>/parts/part-<ns>-<rand>.parquet     appended rows; a part is written to a
                                               temporary name, fsync'd, renamed, and its
                                               directory fsync'd: once ``append`` returns,
                                               the rows survive a crash
    <store>/snapshots/<snapshot_id>/rows.parquet    an immutable, deduplicated copy of every
    <store>/snapshots/<snapshot_id>/snapshot.json   row at the time, sorted by row id

A snapshot's id is a hash of its content (``snap-`` + 16 hex digits of the SHA-256 over
the rows in row-id order), so the same rows give the same id however they were
appended, and a reranker manifest's ``data_snapshot_id`` names exactly what it was
trained on. Snapshots appear atomically (written under ``.staging/``, renamed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from codejury.core.files import fsync_dir
from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.training.errors import (
    CorruptSnapshotError,
    SnapshotNotFoundError,
    StoreWriteError,
    TrainingDataError,
)
from codejury.training.records import LabelledCandidate, Source

log = get_logger(__name__)

STORE_FORMAT = 1
LATEST = "latest"
_SNAPSHOT_PREFIX = "snap-"

SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("program", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("passed", pa.bool_(), nullable=False),
        pa.field("score", pa.float64(), nullable=True),
        pa.field("score_version", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("iteration", pa.int32(), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("candidate_id", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ]
)
_COLUMNS = [f.name for f in SCHEMA]


def store_dir(settings: Settings) -> Path:
    """The configured store, or ``<run_dir>/training/data``."""
    return settings.training.store_dir or settings.run_dir / "training" / "data"


def to_table(rows: Sequence[LabelledCandidate]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    for row in rows:
        for name in _COLUMNS:
            if name == "passed":
                columns[name].append(row.passed)
            elif name == "source":
                columns[name].append(row.source.value)
            else:
                columns[name].append(getattr(row, name))
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def from_table(table: pa.Table) -> list[LabelledCandidate]:
    """Rows of a table read back (its ``passed`` column is derived, so not re-read)."""
    missing = [name for name in _COLUMNS if name not in table.column_names]
    if missing:
        raise CorruptSnapshotError(
            f"a stored table lacks the column(s) {', '.join(missing)}: it was not written by "
            "this store; move it out of the store directory"
        )
    data = table.select(_COLUMNS).to_pydict()
    return [
        LabelledCandidate(
            problem_id=data["problem_id"][i],
            language=data["language"][i],
            program=data["program"][i],
            status=data["status"][i],
            source=Source(data["source"][i]),
            iteration=data["iteration"][i],
            prompt=data["prompt"][i],
            dataset=data["dataset"][i],
            score=data["score"][i],
            score_version=data["score_version"][i],
            request_id=data["request_id"][i],
            candidate_id=data["candidate_id"][i],
            detail=data["detail"][i],
            row_id=data["row_id"][i],
        )
        for i in range(table.num_rows)
    ]


def dedupe(rows: Iterable[LabelledCandidate]) -> list[LabelledCandidate]:
    """One row per row id (the first seen), sorted by row id."""
    kept: dict[str, LabelledCandidate] = {}
    for row in rows:
        kept.setdefault(row.row_id, row)
    return [kept[key] for key in sorted(kept)]


def content_id(rows: Sequence[LabelledCandidate]) -> str:
    """The snapshot id of deduplicated, sorted ``rows``: a hash of every field."""
    digest = hashlib.sha256(f"codejury-training-store/{STORE_FORMAT}\n".encode())
    for row in rows:
        record = {name: getattr(row, name) for name in _COLUMNS if name != "passed"}
        record["source"] = row.source.value
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return _SNAPSHOT_PREFIX + digest.hexdigest()[:16]


def check_snapshot_id(snapshot_id: str) -> str:
    body = snapshot_id.removeprefix(_SNAPSHOT_PREFIX)
    if (
        not snapshot_id.startswith(_SNAPSHOT_PREFIX)
        or len(body) != 16
        or any(c not in "0123456789abcdef" for c in body)
    ):
        raise TrainingDataError(
            f"snapshot {snapshot_id!r} is not a snapshot id: give 'snap-' and 16 hex digits "
            "as `codejury train snapshot` prints it, or 'latest'"
        )
    return snapshot_id


@dataclass(frozen=True)
class SnapshotInfo:
    """What ``snapshot.json`` says about a snapshot."""

    snapshot_id: str
    rows: int
    created_at: datetime
    parts: int

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "store_format": STORE_FORMAT,
                    "snapshot_id": self.snapshot_id,
                    "rows": self.rows,
                    "created_at": self.created_at.isoformat(),
                    "parts": self.parts,
                },
                indent=2,
            )
            + "\n"
        )


@dataclass(frozen=True)
class Snapshot:
    info: SnapshotInfo
    rows: list[LabelledCandidate]

    @property
    def snapshot_id(self) -> str:
        return self.info.snapshot_id


class TrainingStore:
    """Labelled candidates under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parts_dir = root / "parts"
        self.snapshots_dir = root / "snapshots"

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingStore:
        return cls(store_dir(settings))

    # -- appending ---------------------------------------------------------------------

    def append(self, rows: Sequence[LabelledCandidate]) -> Path | None:
        """Write ``rows`` as one new part, durably (file and directory fsync'd).

        Returns the part's path (None for no rows). StoreWriteError if it could not be
        written; then no part is left behind.
        """
        if not rows:
            return None
        table = to_table(rows)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        final = self.parts_dir / name
        tmp = self.parts_dir / f".{name}.tmp"
        try:
            self.parts_dir.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as sink:
                pq.write_table(table, sink, compression="zstd")
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(tmp, final)
            fsync_dir(self.parts_dir)
        except (OSError, pa.ArrowException) as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise StoreWriteError(
                f"cannot write {len(rows)} row(s) to {final} ({type(exc).__name__}: {exc}): "
                "free disk space or fix the permissions of training.store_dir "
                "(CODEJURY_TRAINING__STORE_DIR); the rows are retried"
            ) from exc
        log.debug("store.appended", part=name, rows=len(rows))
        return final

    def parts(self) -> list[Path]:
        """Every committed part, oldest first (temporary files are not parts)."""
        if not self.parts_dir.is_dir():
            return []
        return sorted(p for p in self.parts_dir.glob("part-*.parquet") if p.is_file())

    def rows(self) -> list[LabelledCandidate]:
        """Every row of every part, deduplicated and sorted by row id."""
        return dedupe(row for part in self.parts() for row in _read_rows(part))

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """An immutable snapshot of every row now in the store (the same id, and no new
        files, when one with this content exists)."""
        parts = self.parts()
        rows = dedupe(row for part in parts for row in _read_rows(part))
        snapshot_id = content_id(rows)
        target = self.snapshots_dir / snapshot_id
        if target.is_dir():
            return self.load(snapshot_id)
        info = SnapshotInfo(snapshot_id, len(rows), datetime.now(UTC), len(parts))
        staging = self.root / ".staging" / uuid.uuid4().hex
        try:
            staging.mkdir(parents=True)
            with (staging / "rows.parquet").open("wb") as sink:
                pq.write_table(to_table(rows), sink, compression="zstd")
                sink.flush()
                os.fsync(sink.fileno())
            (staging / "snapshot.json").write_text(info.to_json())
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():  # not a concurrent writer of the same content
                    raise
            fsync_dir(target.parent)
        except (OSError, pa.ArrowException) as exc:
            raise StoreWriteError(
                f"cannot write snapshot {snapshot_id} under {self.snapshots_dir} "
                f"({type(exc).__name__}: {exc}): free disk space and run it again"
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("store.snapshot", snapshot=snapshot_id, rows=len(rows), parts=len(parts))
        return Snapshot(info, rows)

    def snapshots(self) -> list[SnapshotInfo]:
        """Every readable snapshot, oldest first."""
        found = []
        if self.snapshots_dir.is_dir():
            for entry in self.snapshots_dir.iterdir():
                try:
                    found.append(self._info(entry.name))
                except CorruptSnapshotError as exc:
                    log.warning("store.unreadable_snapshot", path=str(entry), error=str(exc))
        return sorted(found, key=lambda s: (s.created_at, s.snapshot_id))

    def resolve(self, name: str) -> str:
        """A snapshot id for ``name`` ('latest' or an id)."""
        if name != LATEST:
            check_snapshot_id(name)
            if not (self.snapshots_dir / name).is_dir():
                known = ", ".join(s.snapshot_id for s in self.snapshots()) or "none"
                raise SnapshotNotFoundError(
                    f"snapshot {name!r} is not in {self.snapshots_dir} (known: {known}): "
                    "make one with `codejury train snapshot`"
                )
            return name
        infos = self.snapshots()
        if not infos:
            raise SnapshotNotFoundError(
                f"no snapshot in {self.snapshots_dir} yet: make one with `codejury train "
                "snapshot` (after `codejury train mutate` or the feedback consumer stored rows)"
            )
        return infos[-1].snapshot_id

    def load(self, name: str) -> Snapshot:
        """The snapshot ``name`` ('latest' or an id), checked against its id."""
        snapshot_id = self.resolve(name)
        info = self._info(snapshot_id)
        rows = _read_rows(self.snapshots_dir / snapshot_id / "rows.parquet")
        if content_id(rows) != snapshot_id:
            raise CorruptSnapshotError(
                f"snapshot {snapshot_id}: its rows no longer hash to its id (edited by hand?): "
                "delete the directory and make a new snapshot"
            )
        return Snapshot(info, rows)

    def _info(self, snapshot_id: str) -> SnapshotInfo:
        path = self.snapshots_dir / snapshot_id / "snapshot.json"
        try:
            data = json.loads(path.read_text())
            return SnapshotInfo(
                snapshot_id=data["snapshot_id"],
                rows=int(data["rows"]),
                created_at=datetime.fromisoformat(data["created_at"]),
                parts=int(data["parts"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptSnapshotError(
                f"{path} cannot be read ({type(exc).__name__}: {exc}): delete "
                f"{path.parent} and make a new snapshot"
            ) from exc


def _read_rows(path: Path) -> list[LabelledCandidate]:
    try:
        table = pq.read_table(path, schema=SCHEMA)
    except (OSError, pa.ArrowException) as exc:
        raise CorruptSnapshotError(
            f"{path} is not a readable Parquet file of the store ({type(exc).__name__}: "
            f"{exc}): move it out of {path.parent}"
        ) from exc
    return from_table(table)
