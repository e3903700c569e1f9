"""Helpers for tests that start a caller process, kill it, and watch what it started."""

from __future__ import annotations

from pathlib import Path
from typing import IO


def marked_line(stream: IO[bytes], marker: bytes) -> list[bytes]:
    """The words after ``marker`` on the first line that starts with it (the caller's log
    lines come first); empty if the stream ends without one."""
    for line in stream:
        if line.startswith(marker):
            return line[len(marker) :].split()
    return []


def exited(pid: int) -> bool:
    """The process is gone or a zombie (it has exited; its new parent may not have reaped
    it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in {"Z", "X"}
