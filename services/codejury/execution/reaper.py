"""Finishes sandboxes after their run has been answered.

When a program exits, bubblewrap reports its exit code at once, but the sandbox's first
process then still tears down the run's namespaces (mounts, network, processes) for a
millisecond or more, and the run's cgroup can only be removed after that. None of it
changes the run's outcome: every process of the run has already been sent SIGKILL
(``RunCgroup.kill_all(wait=False)``) before the outcome is returned. So a run hands its
sandbox to the reaper, whose thread waits for the group to empty, reaps, closes the pipes
and removes the group; ``drain`` waits for all of that (shutdown, tests).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from codejury.core.logging import get_logger

log = get_logger(__name__)


class Reaper:
    """One background thread running disposals in order; started on first use."""

    def __init__(
        self, name: str = "sandbox-reaper", *, max_pending: int = 64, idle_s: float = 5.0
    ) -> None:
        self._name = name
        self._idle_s = idle_s
        self._max_pending = max_pending
        self._pending: deque[Callable[[], None]] = deque()
        self._busy = 0  # queued or running
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, dispose: Callable[[], None]) -> None:
        """Run ``dispose`` soon on the reaper's thread; at once, here, when the reaper is
        ``max_pending`` behind (back-pressure: cgroups must not pile up)."""
        with self._changed:
            behind = self._busy >= self._max_pending
        if behind:
            dispose()
            return
        with self._changed:
            self._pending.append(dispose)
            self._busy += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until every submitted disposal has run; False if ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._pending:
                    # idle threads exit; the next submit starts a fresh one
                    if not self._changed.wait(timeout=self._idle_s) and not self._pending:
                        self._thread = None
                        return
                dispose = self._pending.popleft()
            try:
                dispose()
            except Exception as exc:  # one bad disposal must not strand the others
                log.warning("sandbox.dispose_failed", error=str(exc))
            finally:
                with self._changed:
                    self._busy -= 1
                    self._changed.notify_all()
