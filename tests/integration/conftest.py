"""Integration fixtures: a real tansu broker for the whole session, fresh topics per test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from codejury.bus.admin import ensure_topics
from codejury.bus.embedded import EmbeddedBroker
from codejury.bus.topics import dlq
from codejury.core.settings import BusSettings, load_settings
from kafka import KafkaConsumer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    settings = load_settings()
    log_dir = tmp_path_factory.mktemp("broker")
    with EmbeddedBroker(settings.broker, settings.bus, log_dir=log_dir) as running:
        yield running


@pytest.fixture
def bus(broker: EmbeddedBroker) -> BusSettings:
    # Short backoffs keep retry tests quick; the rules under test are the same.
    return broker.bus_settings.model_copy(
        update={"retry_backoff_s": 0.05, "retry_backoff_max_s": 0.2}
    )


@pytest.fixture
def fresh_topics(bus: BusSettings) -> Callable[..., list[str]]:
    """Make uniquely named topics (and their DLQs): tests never share topics or groups."""

    def make(*names: str) -> list[str]:
        suffix = uuid.uuid4().hex[:8]
        topics = [f"test.{name}.{suffix}" for name in names]
        ensure_topics(bus, [*topics, *(dlq(t) for t in topics)])
        return topics

    return make


@pytest.fixture
def group_id() -> str:
    return f"test-group-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@pytest.fixture
def collect(bus: BusSettings) -> Callable[..., list[Record]]:
    """Read raw records of ``topics`` with a fresh group until ``count`` arrived or timeout.

    A plain kafka-python consumer, independent of the consumer loop under test, that
    keeps every record (duplicates included).
    """

    def run(topics: list[str], count: int, *, timeout_s: float = 60.0) -> list[Record]:
        consumer = KafkaConsumer(
            *topics,
            bootstrap_servers=bus.bootstrap_servers,
            group_id=f"test-collector-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=bus.session_timeout_ms,
            heartbeat_interval_ms=bus.heartbeat_interval_ms,
        )
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(records) < count and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=300).values():
                    records.extend(
                        Record(r.topic, r.partition, r.offset, r.key, r.value) for r in batch
                    )
        finally:
            consumer.close(autocommit=False)
        return records

    return run
