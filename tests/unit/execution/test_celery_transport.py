"""The embedded Celery broker's folder transport: messages appear whole, or not at all."""

from __future__ import annotations

import threading
from pathlib import Path

from codejury.execution import celery_transport
from kombu import Connection


def _connection(folder: Path) -> Connection:
    return Connection(
        f"{celery_transport.register()}://",
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        },
    )


def test_the_scheme_names_the_atomic_transport(tmp_path: Path) -> None:
    with _connection(tmp_path) as connection:
        assert isinstance(connection.default_channel, celery_transport.Channel)


def test_a_consumer_racing_a_producer_reads_every_message_whole(tmp_path: Path) -> None:
    count = 2000
    body = "x" * 20_000  # large enough that a write is not instant
    with _connection(tmp_path) as producer, _connection(tmp_path) as consumer:
        queue_out = producer.SimpleQueue("race")
        queue_in = consumer.SimpleQueue("race")
        got: list[str] = []
        errors: list[BaseException] = []

        def consume() -> None:
            try:
                while len(got) < count:
                    message = queue_in.get(timeout=10)
                    got.append(message.payload)
                    message.ack()
            except BaseException as exc:  # the test reports it below
                errors.append(exc)

        reader = threading.Thread(target=consume)
        reader.start()
        for i in range(count):
            queue_out.put(f"{i}:{body}")
        reader.join(timeout=60)
    assert errors == []
    assert sorted(int(p.split(":")[0]) for p in got) == list(range(count))
    assert all(p.endswith(body) for p in got)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]
