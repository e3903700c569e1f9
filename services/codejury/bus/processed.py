"""Bounded stores of processed event ids, the consumer's idempotence memory.

Kafka delivers at least once: a record handled but not yet committed when a consumer
dies is delivered again. The consumer records an id only after the handler's outputs
are acknowledged, and skips ids it has recorded. ``SqliteProcessedIds`` survives a
SIGKILL; ``MemoryProcessedIds`` does not, which is fine where outputs carry derived ids
(see ``envelope.derived_event_id``) and the next stage deduplicates them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol


class ProcessedIds(Protocol):
    def __contains__(self, event_id: object) -> bool: ...

    def add_all(self, event_ids: Iterable[str]) -> None: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class MemoryProcessedIds:
    """The newest ``capacity`` ids in memory (insertion order, oldest evicted first)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add_all(self, event_ids: Iterable[str]) -> None:
        for event_id in event_ids:
            self._ids[event_id] = None
            self._ids.move_to_end(event_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)

    def __len__(self) -> int:
        return len(self._ids)

    def close(self) -> None:
        self._ids.clear()


class SqliteProcessedIds:
    """The newest ``capacity`` ids in a SQLite file (WAL, synchronous writes)."""

    def __init__(self, path: Path, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._capacity = capacity
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS processed "
            "(seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT UNIQUE NOT NULL)"
        )

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM processed WHERE event_id = ?", (str(event_id),)
            ).fetchone()
        return row is not None

    def add_all(self, event_ids: Iterable[str]) -> None:
        rows = [(e,) for e in event_ids]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO processed (event_id) VALUES (?)", rows)
                self._db.execute(
                    "DELETE FROM processed WHERE seq <= (SELECT MAX(seq) FROM processed) - ?",
                    (self._capacity,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM processed").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()
