"""The order a stage handles a polled batch in: by arrival, each partition's in order."""

from __future__ import annotations

from codejury.bus.consumer import arrival_order
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord


def _record(partition: int, offset: int, timestamp: int) -> ConsumerRecord:
    return ConsumerRecord("t", partition, -1, offset, timestamp, 0, b"k", b"v", [], None, 1, 1, 0)


def test_records_of_several_partitions_are_handled_in_arrival_order() -> None:
    batch = {
        TopicPartition("t", 0): [_record(0, 0, 100), _record(0, 1, 400), _record(0, 2, 500)],
        TopicPartition("t", 1): [_record(1, 7, 200), _record(1, 8, 300)],
    }
    order = [(r.partition, r.offset) for r in arrival_order(batch)]
    # the poll grouped partition 0's records first; partition 1's arrived before two of them
    assert order == [(0, 0), (1, 7), (1, 8), (0, 1), (0, 2)]


def test_a_partition_keeps_its_order_even_when_its_timestamps_do_not() -> None:
    # producers' clocks differ: a later record may carry an earlier timestamp
    batch = {
        TopicPartition("t", 0): [_record(0, 0, 300), _record(0, 1, 100)],
        TopicPartition("t", 1): [_record(1, 0, 200)],
    }
    order = [(r.partition, r.offset) for r in arrival_order(batch)]
    assert order.index((0, 0)) < order.index((0, 1))
    assert sorted(order) == [(0, 0), (0, 1), (1, 0)]
