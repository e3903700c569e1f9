"""Child processes every deployable starts (tansu, Celery workers, model servers,
services): one way to stop them, and one way for them to go when their parent goes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
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


def die_with_parent(poll_s: float = 0.5) -> None:
    """In a child started with ``PARENT_PID_ENV`` set: SIGTERM this process once its parent
    is gone, even if it died by SIGKILL, so a killed deployment (``codejury demo``, ``up``,
    a reranking service) leaves no service, worker or model server behind. The SIGTERM
    takes the child's own graceful path (a service drains and commits, a Celery worker
    finishes its tasks). Elsewhere (a pod, a terminal), a no-op.

    A daemon thread polls ``getppid`` rather than setting ``PR_SET_PDEATHSIG``: that
    signal follows the *thread* that forked, so a service restarted from a supervisor
    thread would be stopped the moment that thread ended."""
    # Popped: it names this process's parent, not its own children's (a grandchild that
    # inherited it would take itself for an orphan at once).
    expected = os.environ.pop(PARENT_PID_ENV, None)
    if not expected:
        return

    def watch() -> None:
        while str(os.getppid()) == expected:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
