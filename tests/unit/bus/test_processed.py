from __future__ import annotations

from pathlib import Path

import pytest
from codejury.bus.processed import MemoryProcessedIds, SqliteProcessedIds


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(capacity: int):  # type: ignore[no-untyped-def]
        if request.param == "memory":
            return MemoryProcessedIds(capacity)
        return SqliteProcessedIds(tmp_path / "ids.sqlite", capacity)

    return make


def test_remembers_ids_up_to_capacity_dropping_the_oldest(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(3)
    store.add_all(["a", "b", "c"])
    assert all(i in store for i in "abc")
    store.add_all(["d"])
    assert "a" not in store
    assert all(i in store for i in "bcd")
    assert len(store) == 3


def test_re_adding_refreshes_an_id(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(2)
    store.add_all(["a", "b"])
    store.add_all(["a"])  # a is now the newest
    store.add_all(["c"])
    assert "a" in store and "b" not in store


def test_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ids.sqlite"
    store = SqliteProcessedIds(path, 10)
    store.add_all(["e1", "e2"])
    store.close()
    reopened = SqliteProcessedIds(path, 10)
    assert "e1" in reopened and "e2" in reopened and "e3" not in reopened


def test_capacity_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="capacity"):
        MemoryProcessedIds(0)
    with pytest.raises(ValueError, match="capacity"):
        SqliteProcessedIds(tmp_path / "x.sqlite", 0)
