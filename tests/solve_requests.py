"""What a Solve front door published, seen from Kafka: the ids of the SolveRequested
events on the topic while a test runs (to check a refused request never got there)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from codejury.bus.envelope import Event
from codejury.bus.tail import TopicTail
from codejury.bus.topics import SOLVE_REQUESTED
from codejury.core.settings import BusSettings
from codejury.proto.v1 import events_pb2


@contextlib.contextmanager
def published_requests(bus: BusSettings) -> Iterator[list[str]]:
    """The request ids published to codejury.solve.requested, filled in as they arrive
    (from the topic's beginning: other tests' requests are there too)."""
    seen: list[str] = []

    def on_event(event: Event) -> None:
        if isinstance(event.payload, events_pb2.SolveRequested):
            seen.append(event.payload.request_id)

    tail = TopicTail(bus, SOLVE_REQUESTED, on_event, start="beginning", name="test")
    tail.start()
    try:
        yield seen
    finally:
        tail.stop()
