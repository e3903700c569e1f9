"""Stop signals that set an event, safely.

A Python signal handler runs on the main thread between two bytecodes, whatever that
thread was doing. ``threading.Event.set`` takes the event's lock, so a handler that calls
it directly deadlocks when a second signal arrives while the first handler is inside
``set``: the second waits for a lock its own thread holds, for ever. That is how a service
sent SIGTERM twice ignored both until its supervisor's SIGKILL 60 s later (its stack dump
showed the main thread in ``Event.set`` called from the handler, inside ``Event.set``). The
handlers here only start a thread, which takes the lock when the main thread lets it go.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _set_from_signal(event: threading.Event, then: Callable[[], None] | None = None) -> None:
    """Set ``event`` (then call ``then``) on another thread: safe inside a signal handler."""
    if event.is_set():
        return

    def work() -> None:
        event.set()
        if then is not None:
            then()

    threading.Thread(target=work, name="stop-signal", daemon=True).start()


def set_on_signals(
    event: threading.Event,
    signals: Iterable[signal.Signals] = STOP_SIGNALS,
    *,
    on_signal: Callable[[int], None] | None = None,
) -> None:
    """``event`` is set when one of ``signals`` arrives (main thread only, as
    ``signal.signal``); ``on_signal(signum)`` runs on that thread after it, for a log line
    (logging takes locks too, so it must not run in the handler either)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        _set_from_signal(event, None if on_signal is None else lambda: on_signal(signum))

    for number in signals:
        signal.signal(number, handler)
