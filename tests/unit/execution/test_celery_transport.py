"""The embedded Celery broker's folder transport and result folder: messages and results
appear whole, or not at all."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from celery import Celery, states
from celery.app.backends import by_url
from codejury.core.settings import Settings
from codejury.execution import celery_transport
from codejury.execution.celery_app import result_backend
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


def _results(folder: Path, opener: Any = open) -> celery_transport.ResultFolder:
    app = Celery("results-test")
    backend_cls, url = by_url(celery_transport.result_backend_url(str(folder)))
    assert backend_cls is celery_transport.ResultFolder
    backend: celery_transport.ResultFolder = backend_cls(app=app, url=url, open=opener)
    return backend


def test_a_result_polled_while_it_is_written_is_pending_never_half_read(tmp_path: Path) -> None:
    """The CI failure: a 60 KB result read half-written failed its batch with
    "Unterminated string". A poll in the middle of the write now sees no result yet."""
    seen_mid_write: list[str] = []

    class HalfThenPoll:
        """A result file that, halfway through its write, lets the caller poll."""

        def __init__(self, path: bytes, mode: str) -> None:
            self._file = open(path, mode)  # noqa: SIM115 - closed in __exit__

        def __enter__(self) -> HalfThenPoll:
            return self

        def __exit__(self, *exc: object) -> None:
            self._file.close()

        def write(self, data: bytes) -> None:
            self._file.write(data[: len(data) // 2])
            self._file.flush()
            seen_mid_write.append(poller.get_task_meta("task-1")["status"])
            self._file.write(data[len(data) // 2 :])

    def opener(path: bytes, mode: str) -> Any:
        return HalfThenPoll(path, mode) if "w" in mode else open(path, mode)

    poller = _results(tmp_path)
    writer = _results(tmp_path, opener)
    seen_mid_write.clear()  # the backend's own start-up check wrote through the opener
    writer.store_result("task-1", {"stdout": "x" * 60_000}, states.SUCCESS)
    assert seen_mid_write == [states.PENDING]
    assert poller.get_task_meta("task-1")["result"] == {"stdout": "x" * 60_000}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]


def test_a_configured_file_url_gets_the_whole_file_backend(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path, celery={"result_backend": f"file://{tmp_path}"})
    assert by_url(result_backend(settings))[0] is celery_transport.ResultFolder
