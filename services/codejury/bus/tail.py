"""Follow a topic without a consumer group: every partition, from its end or beginning.

For readers that want to *see* events rather than *process* them once per group, such as
the Solve front door waiting for its own completions among everyone's: each replica
reads every partition, so no commit, no rebalance and no group join (tansu makes a join
wait about half the session timeout). Records that do not decode are counted and
skipped: a tail consumes nothing on anyone's behalf, and the stage that published the
record is the one whose dead-letter topic holds what it could not handle.

``start="end"`` needs a broker whose ListOffsets(latest) is right (Kafka); tansu's is
not, so on the embedded broker start from the beginning (its memory storage is small).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from codejury.bus.admin import security_options, unavailable
from codejury.bus.envelope import Event, unwrap
from codejury.bus.errors import EnvelopeError
from codejury.core.logging import get_logger
from codejury.core.settings import BusSettings

log = get_logger(__name__)


class TopicTail:
    """Calls ``on_event`` for every decodable event of ``topic`` from ``start`` on, in a
    daemon thread, until ``stop``."""

    def __init__(
        self,
        settings: BusSettings,
        topic: str,
        on_event: Callable[[Event], None],
        *,
        start: Literal["end", "beginning"],
        name: str,
    ) -> None:
        self._settings = settings
        self.topic = topic
        self._on_event = on_event
        self._stop = threading.Event()
        self.skipped = 0  # records that were not CodeJury events
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=f"{settings.client_id}-{name}",
                group_id=None,
                enable_auto_commit=False,
                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                request_timeout_ms=settings.request_timeout_ms,
                bootstrap_timeout_ms=max(1000, int(settings.connect_timeout_s * 1000)),
                **security_options(settings),
            )
        except KafkaError as exc:
            raise unavailable(settings, exc) from exc
        partitions = self._partitions()
        self._consumer.assign(partitions)
        if start == "end":
            self._consumer.seek_to_end(*partitions)
        else:
            self._consumer.seek_to_beginning(*partitions)
        for tp in partitions:  # resolve the positions now, so nothing published later is missed
            self._consumer.position(tp)
        self._thread = threading.Thread(target=self._run, name=f"tail-{topic}", daemon=True)

    def _partitions(self) -> list[TopicPartition]:
        deadline = time.monotonic() + self._settings.connect_timeout_s
        while True:
            ids = self._consumer.partitions_for_topic(self.topic)
            if ids:
                return [TopicPartition(self.topic, p) for p in sorted(ids)]
            if time.monotonic() > deadline:
                self._consumer.close()
                raise unavailable(
                    self._settings, KafkaError(f"topic {self.topic} has no partitions")
                )
            time.sleep(0.1)

    def start(self) -> TopicTail:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    batch = self._consumer.poll(timeout_ms=self._settings.poll_timeout_ms)
                except KafkaError as exc:  # the broker went away: keep trying until stopped
                    log.warning("tail.poll_failed", topic=self.topic, error=str(exc))
                    self._stop.wait(1.0)
                    continue
                for records in batch.values():
                    for record in records:
                        self._deliver(
                            record.topic, record.partition, record.offset, record.key, record.value
                        )
        finally:
            self._consumer.close()

    def _deliver(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        try:
            envelope, payload = unwrap(value)
        except EnvelopeError as exc:
            self.skipped += 1
            log.warning(
                "tail.skipped", topic=topic, partition=partition, offset=offset, error=str(exc)
            )
            return
        self._on_event(Event(topic, partition, offset, key, envelope, payload))

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.ident is None:  # never started: nothing else will close it
            self._consumer.close()
        elif self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
