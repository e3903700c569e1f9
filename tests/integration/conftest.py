"""Integration fixtures: a real tansu broker for the whole session, fresh topics per test,
real sandboxes under a parent cgroup of the session's own, an executor on them, and the
benchmark data dir."""

from __future__ import annotations

import os
import shutil
import tempfile
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
from codejury.execution.cgroups import CGROUP_ROOT, detect_version, sweep_stale
from codejury.execution.errors import SandboxUnavailableError
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.sandbox import Limits, Sandbox, SandboxConfig
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


# -- sandboxes: real bubblewrap and cgroups, skipped with a reason where unavailable ----


@pytest.fixture(scope="session")
def cgroup_parent() -> Iterator[str]:
    """A parent cgroup of this session's own, so leftovers are attributable to us."""
    name = f"codejury-test-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        version = detect_version()
    except SandboxUnavailableError:
        return
    # Celery pool processes that held warm sandboxes are gone by now: their empty groups
    # are swept the way a restarted worker sweeps them; anything else left fails below.
    sweep_stale(name)
    dirs = [CGROUP_ROOT / name] if version == "v2" else list(CGROUP_ROOT.glob(f"*/{name}"))
    for directory in dirs:
        if directory.exists():
            directory.rmdir()  # fails loudly if a run's group was left behind


@pytest.fixture(scope="session")
def sandbox(cgroup_parent: str) -> Sandbox:
    box = Sandbox(SandboxConfig(cgroup_parent=cgroup_parent))
    try:
        box.check()
    except SandboxUnavailableError as exc:
        pytest.skip(f"sandbox unavailable here: {exc}")
    return box


@pytest.fixture(scope="session")
def cache_root() -> Iterator[Path]:
    """A compile cache the sandbox user can reach (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="codejury-test-cache-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def warm_sandbox(sandbox: Sandbox, cgroup_parent: str) -> Iterator[Sandbox]:
    """The same sandbox with two sandboxes kept started ahead of demand."""
    box = Sandbox(SandboxConfig(cgroup_parent=cgroup_parent, warm_pool=2))
    box.check()
    yield box
    box.close()


DATA_DIR = Path(
    os.environ.get("CODEJURY_DATA_DIR", Path(__file__).parents[2].parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "mbxp").is_dir():
        pytest.skip(f"no MBXP data under {DATA_DIR}: set CODEJURY_DATA_DIR to use it")
    return DATA_DIR


@pytest.fixture(scope="session")
def training_executor(warm_sandbox: Sandbox, cache_root: Path) -> Executor:
    """A sandboxed executor on the warm sandbox, for tests that label programs."""
    return Executor(
        warm_sandbox,
        ExecutorConfig(
            cache_dir=cache_root / "training", default_limits=Limits(timeout_s=10), parallelism=2
        ),
    )
