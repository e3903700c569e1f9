"""Stop signals set their event without taking its lock in the handler: a second signal
that arrives while the first handler is inside ``Event.set`` must not deadlock the main
thread (a service sent SIGTERM twice once hung until its SIGKILL)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest
from codejury.core.signals import STOP_SIGNALS, set_on_signals


@pytest.fixture(autouse=True)
def restored_handlers() -> Iterator[None]:
    before = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    yield
    for number, handler in before.items():
        signal.signal(number, handler)


def test_a_signal_while_the_event_lock_is_held_does_not_block_the_main_thread() -> None:
    stop = threading.Event()
    set_on_signals(stop)
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    # As when the first handler is inside Event.set (it holds the event's lock) and the
    # second signal's handler runs on the same thread: a handler calling stop.set() waits
    # here for ever.
    with stop._cond:  # type: ignore[attr-defined]  # the lock Event.set takes (CPython)
        handler(signal.SIGTERM, None)
        assert not stop.is_set()  # set by another thread once the lock is free
    assert stop.wait(5)


def test_real_signals_set_the_event_and_report_each_after_it() -> None:
    stop = threading.Event()
    heard: list[int] = []
    reported = threading.Event()

    def report(signum: int) -> None:
        heard.append(signum)
        reported.set()

    set_on_signals(stop, on_signal=report)
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.wait(5) and reported.wait(5)
    assert heard == [signal.SIGTERM]
    os.kill(os.getpid(), signal.SIGINT)  # once set, later signals change nothing
    assert stop.is_set()
