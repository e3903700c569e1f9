"""Child processes every deployable starts (tansu, Celery workers, model servers,
services): one way to stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time


def stop_process(
    process: subprocess.Popen[bytes] | None, *, timeout_s: float, dump_stacks: bool = False
) -> bool:
    """SIGTERM (a warm shutdown for every child we start), wait ``timeout_s``, then
    SIGKILL its whole process group: a child started with ``start_new_session`` leads one,
    and what it forked must not outlive it. ``dump_stacks`` (a ``codejury`` child, which
    dumps every thread's stack to its stderr on SIGUSR1): SIGUSR1 first, so its log shows
    where it hung. Returns whether it stopped within ``timeout_s`` (or was not running)."""
    if process is None or process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
        return True
    except subprocess.TimeoutExpired:
        pass
    if dump_stacks:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGUSR1)
            time.sleep(1)  # the dump lands in the log before the SIGKILL
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
    return False


#: Set by a parent for a child that must not outlive it (``die_with_parent``).
PARENT_PID_ENV = "CJ_PARENT_PID"  # not CODEJURY_*: settings refuse unknown names


def die_with_parent() -> None:
    """In a child started with ``PARENT_PID_ENV`` set: SIGTERM this process when its parent
    dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``), so a killed service leaves no
    orphan behind. The parent must start it from a thread that lives as long as it does
    (the signal follows the thread that forked). Elsewhere, a no-op."""
    expected = os.environ.get(PARENT_PID_ENV)
    if not expected:
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the parent stops its children itself
    if str(os.getppid()) != expected:  # it died before the prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
