"""Sandboxes started ahead of demand, so a run does not wait for bubblewrap's setup.

A background thread keeps ``size`` prepared sandboxes (see ``Sandbox.prepare``): each
is complete (namespaces, mounts, cgroup) and waits in its launcher for one program. A
taken sandbox is used once and disposed of; the thread starts a replacement at once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from codejury.core.logging import get_logger
from codejury.execution.sandbox import PreparedSandbox

log = get_logger(__name__)

_RETRY_DELAY_S = 1.0


class WarmPool:
    def __init__(self, prepare: Callable[[], PreparedSandbox], *, size: int) -> None:
        self._prepare = prepare
        self._size = size
        self._ready: deque[PreparedSandbox] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._fill, name="sandbox-warm-pool", daemon=True)
        self._thread.start()

    def take(self) -> PreparedSandbox | None:
        """A ready sandbox, or None when none is ready (the caller starts one itself)."""
        with self._changed:
            while self._ready:
                prepared = self._ready.popleft()
                self._changed.notify_all()
                if prepared.alive:
                    return prepared
                prepared.dispose()
        return None

    def _fill(self) -> None:
        while True:
            with self._changed:
                while not self._closed and len(self._ready) >= self._size:
                    self._changed.wait()
                if self._closed:
                    return
            try:
                prepared = self._prepare()
            except Exception as exc:  # keep the pool alive; runs fall back to cold starts
                with self._changed:
                    if self._closed:  # torn down mid-start by the shutdown: expected
                        return
                log.warning("warm_pool.prepare_failed", error=str(exc))
                with self._changed:
                    self._changed.wait(_RETRY_DELAY_S)
                continue
            with self._changed:
                if self._closed:
                    prepared.dispose()
                    return
                self._ready.append(prepared)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            ready, self._ready = list(self._ready), deque()
            self._changed.notify_all()
        self._thread.join(timeout=30)
        for prepared in ready:
            prepared.dispose()
