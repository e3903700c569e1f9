"""Reading a running program: capped stdout/stderr, deadlines, bwrap's status fd."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_READ_CHUNK = 65536


@dataclass
class Capture:
    """Keeps the first ``cap`` bytes of a stream and counts the rest."""

    cap: int
    data: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)


@dataclass(frozen=True)
class Pumped:
    returncode: int
    timed_out: bool
    output_limited: bool
    wall_time_s: float
    stdout: Capture
    stderr: Capture


def pump(
    process: subprocess.Popen[bytes],
    *,
    started: float,
    timeout_s: float,
    max_output_bytes: int,
    captured_bytes: int,
    kill: Callable[[], None],
) -> Pumped:
    """Read stdout/stderr until the program ends, its deadline passes or it floods us.

    ``kill`` must end every process of the run; the process has exited on return."""
    out, err = Capture(captured_bytes), Capture(captured_bytes)
    timed_out = output_limited = False
    deadline = started + timeout_s
    if process.stdout is None or process.stderr is None:
        raise RuntimeError("the program's stdout and stderr must be pipes")
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, out)
    selector.register(process.stderr, selectors.EVENT_READ, err)
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                kill()
                break
            for key, _ in selector.select(timeout=min(remaining, 0.5)):
                chunk = os.read(key.fd, _READ_CHUNK)
                if chunk:
                    key.data.add(chunk)
                else:
                    selector.unregister(key.fileobj)
            if out.total + err.total > max_output_bytes:
                output_limited = True
                kill()
                break
        # Output closed: the program is ending; allow it the rest of its time to exit.
        killed = timed_out or output_limited
        grace = 5.0 if killed else max(0.0, deadline - time.monotonic()) + 0.5
        if not wait_exit(process, grace):
            timed_out = True
            kill()
            process.wait(timeout=5)
    finally:
        selector.close()
        process.stdout.close()
        process.stderr.close()
    return Pumped(
        returncode=process.returncode,
        timed_out=timed_out,
        output_limited=output_limited,
        wall_time_s=time.monotonic() - started,
        stdout=out,
        stderr=err,
    )


def wait_exit(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Reap ``process`` if it exits within ``timeout_s``; False if it did not.

    Waits on a pidfd (Linux >= 5.3), which wakes the moment the process exits, where
    ``Popen.wait(timeout=...)`` polls with sleeps that grow to 50 ms."""
    if process.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # an old kernel: fall back to Popen's polling
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            if not selector.select(timeout=timeout_s):
                return False
    finally:
        os.close(pidfd)
    process.wait()
    return True


class StatusReader:
    """bwrap's --json-status-fd: {"child-pid": N, ...} once the sandbox's first process
    exists, {"exit-code": N} when the program ends."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = ""
        self.status: dict[str, int] = {}

    def _parse(self) -> None:
        decoder = json.JSONDecoder()
        text, pos = self._buffer, 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            try:
                obj, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
            if isinstance(obj, dict):
                self.status.update({k: v for k, v in obj.items() if isinstance(v, int)})
        self._buffer = text[pos:]

    def finish(self) -> dict[str, int]:
        while chunk := os.read(self._fd, _READ_CHUNK):
            self._buffer += chunk.decode(errors="replace")
        self._parse()
        return self.status


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, _READ_CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)
