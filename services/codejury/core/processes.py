"""Child processes every deployable starts (tansu, Celery workers, model servers,
services): one way to stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_process(process: subprocess.Popen[bytes] | None, *, timeout_s: float) -> None:
    """SIGTERM (a warm shutdown for every child we start), wait ``timeout_s``, then
    SIGKILL its whole process group: a child started with ``start_new_session`` leads one,
    and what it forked must not outlive it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        group = os.getpgid(process.pid)
    except ProcessLookupError:
        group = None
    if group is not None and group == process.pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    else:
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout_s)
