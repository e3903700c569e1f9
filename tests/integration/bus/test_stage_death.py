"""A stage whose consumer loop dies takes its service down (issue 16): the stop event is
set, so the service shuts down (health NOT_SERVING, the server drains) and exits 1 naming
the stage, instead of staying READY while every request waits out its deadline."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from codejury.bus.consumer import EventConsumer
from codejury.bus.producer import EventProducer
from codejury.cli.app import StageDiedError, running_stage
from codejury.core.settings import BusSettings
from codejury.proto.v1 import events_pb2


class _BrokenLoop(EventConsumer):
    """The real consumer with one fault injected: handling a polled batch raises."""

    def _process_batch(self, batch):  # type: ignore[no-untyped-def]
        raise RuntimeError("the loop broke")


def test_a_dead_stage_loop_stops_the_service_and_names_the_stage(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str
) -> None:
    (topic,) = fresh_topics("dies")
    with EventProducer(bus, name="test") as producer:
        producer.publish_now(topic, events_pb2.SolveRequested(request_id="r1"), key="r1")
    consumer = _BrokenLoop(bus, group_id=group_id, topics=[topic], handler=lambda e: [], name="s")
    stop = threading.Event()
    with running_stage(consumer, join_timeout_s=30, stop=stop) as watch:
        assert stop.wait(60), "the service was not told to stop"
    with pytest.raises(StageDiedError, match=r"the Kafka stage s stopped: RuntimeError"):
        watch.raise_if_died()


def test_a_stage_stopped_on_purpose_is_not_a_death(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str
) -> None:
    (topic,) = fresh_topics("lives")
    consumer = EventConsumer(bus, group_id=group_id, topics=[topic], handler=lambda e: [], name="s")
    stop = threading.Event()
    with running_stage(consumer, join_timeout_s=30, stop=stop) as watch:
        pass  # leaving the block asks the loop to stop
    assert not stop.is_set()
    watch.raise_if_died()  # nothing to raise
