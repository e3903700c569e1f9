"""Requests waiting for their ``codejury.solve.completed`` event, matched by request id.

The front door registers a request before publishing it, so a completion can never
arrive unseen; a completion nobody waits for (another replica's request, or one whose
deadline passed) is dropped. A redelivered completion (at-least-once) finds its waiter
already answered and changes nothing.
"""

from __future__ import annotations

import threading

from codejury.bus.envelope import Event
from codejury.core.logging import get_logger
from codejury.proto.v1 import events_pb2

log = get_logger(__name__)


class Waiter:
    """One request's slot: set once by the listener, read by the RPC thread."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.completed: events_pb2.SolveCompleted | None = None
        self.cancelled = False

    def wait(self, timeout_s: float) -> events_pb2.SolveCompleted | None:
        self._done.wait(timeout_s)
        return self.completed

    def set(self, completed: events_pb2.SolveCompleted) -> None:
        with self._lock:
            if not self._done.is_set():
                self.completed = completed
                self._done.set()

    def cancel(self) -> None:
        """The caller is gone (cancelled, or its own deadline passed): stop waiting now, so
        its in-flight slot is free at once rather than at the request's deadline."""
        with self._lock:
            if not self._done.is_set():
                self.cancelled = True
                self._done.set()


class PendingCompletions:
    """request id -> Waiter, safe across the gRPC threads and the listener thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, Waiter] = {}
        self.unmatched = 0  # completions nobody here was waiting for

    def register(self, request_id: str) -> Waiter:
        with self._lock:
            if request_id in self._waiters:
                raise KeyError(request_id)
            waiter = self._waiters[request_id] = Waiter(request_id)
            return waiter

    def discard(self, request_id: str) -> None:
        with self._lock:
            self._waiters.pop(request_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiters)

    def deliver(self, completed: events_pb2.SolveCompleted) -> bool:
        with self._lock:
            waiter = self._waiters.get(completed.request_id)
            if waiter is None:
                self.unmatched += 1
        if waiter is None:
            return False
        waiter.set(completed)
        return True

    def on_event(self, event: Event) -> None:
        """The TopicTail callback."""
        if isinstance(event.payload, events_pb2.SolveCompleted):
            self.deliver(event.payload)
        else:
            log.warning("completions.unexpected", type=event.payload.DESCRIPTOR.full_name)
