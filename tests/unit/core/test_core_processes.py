"""Stopping a child: SIGTERM, and SIGKILL when it does not go; a stack dump first."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from codejury.core.processes import stop_process

# A child that ignores SIGTERM and dumps its stacks on SIGUSR1, as every codejury process does.
_STUBBORN = """
import faulthandler, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
faulthandler.register(signal.SIGUSR1, all_threads=True)
print("ready", flush=True)
def stuck_here():
    while True:
        time.sleep(0.1)
stuck_here()
"""


def _start(tmp_path: Path, code: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while b"ready" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    return child, log


def test_a_child_that_ignores_sigterm_dumps_its_stacks_then_is_killed(tmp_path: Path) -> None:
    child, log = _start(tmp_path, _STUBBORN)
    assert stop_process(child, timeout_s=0.5, dump_stacks=True) is False
    assert child.returncode == -9
    assert "in stuck_here" in log.read_text()  # where it hung, in its log


def test_a_child_that_stops_on_sigterm_is_not_dumped(tmp_path: Path) -> None:
    child, log = _start(tmp_path, _STUBBORN.replace("signal.SIG_IGN", "signal.SIG_DFL"))
    assert stop_process(child, timeout_s=10, dump_stacks=True) is True
    assert child.returncode == -15
    assert "stuck_here" not in log.read_text()
