"""Celery fan-out to a worker in a separate process, over filesystem:// and over Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from codejury.bus.embedded import free_port
from codejury.core.settings import Settings, load_settings
from codejury.execution.celery_app import HEALTH_TASK, make_celery_app
from codejury.execution.local_worker import LocalWorker, WorkerStartError

from tests.children import exited, marked_line

TASKS = 200


def _run_tasks(settings: Settings) -> None:
    app = make_celery_app(settings)
    with LocalWorker(settings, app) as worker:
        results = [app.send_task(HEALTH_TASK, args=[f"token-{i}"]) for i in range(TASKS)]
        answers = [r.get(timeout=settings.celery.result_timeout_s, interval=0.02) for r in results]
        worker_pid = worker.pid
    assert [a["token"] for a in answers] == [f"token-{i}" for i in range(TASKS)]
    # Run by the worker's pool processes, never by the caller.
    pids = {a["pid"] for a in answers}
    assert os.getpid() not in pids and worker_pid not in pids
    assert 1 <= len(pids) <= settings.celery.worker_concurrency


# Slow lane (12 s): volume; the other tests here keep the transport's correctness.
@pytest.mark.slow
def test_200_tasks_over_the_filesystem_transport(run_dir: Path, cache_root: Path) -> None:
    settings = load_settings({"run_dir": run_dir, "execution": {"cache_dir": cache_root / "fs"}})
    _run_tasks(settings)
    # Acknowledged (acks_late) messages are removed from the queue folder.
    assert list((run_dir / "celery" / "queue").iterdir()) == []


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (bin/setup installs it as root)")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_200_tasks_over_redis(run_dir: Path, redis_url: str, cache_root: Path) -> None:
    settings = load_settings(
        {
            "run_dir": run_dir,
            "celery": {"broker_url": redis_url, "result_backend": redis_url},
            "execution": {"cache_dir": cache_root / "redis"},
        }
    )
    _run_tasks(settings)


@pytest.mark.slow  # ~21 s: Celery retries the dead broker
def test_a_worker_that_cannot_reach_its_broker_fails_to_start_clearly(
    run_dir: Path, cache_root: Path
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = load_settings(
        {
            "run_dir": run_dir,
            "celery": {"broker_url": dead, "result_backend": dead},
            "execution": {"cache_dir": cache_root / "dead"},
        }
    )
    worker = LocalWorker(settings, make_celery_app(settings), startup_timeout_s=5)
    with pytest.raises(WorkerStartError, match="CODEJURY_CELERY__BROKER_URL"):
        worker.start()
    assert worker.pid is None


# A caller that starts a worker, prints its pid, then waits to be killed.
_CALLER = """
import sys, time
from pathlib import Path
from codejury.core.settings import load_settings
from codejury.execution.celery_app import make_celery_app
from codejury.execution.local_worker import LocalWorker
settings = load_settings({"run_dir": sys.argv[1], "execution": {"cache_dir": sys.argv[2]}})
worker = LocalWorker(settings, make_celery_app(settings)).start()
print("worker pid", worker.pid, flush=True)
time.sleep(300)
"""


# Slow lane (~9 s): the default lane has the mechanism (tests/unit/core/
# test_core_die_with_parent.py) and every embedded child, the worker included, being told
# (test_pipe_end_to_end.py); this shows a real Celery worker taking the signal.
@pytest.mark.slow
def test_a_worker_goes_with_a_caller_killed_by_sigkill(run_dir: Path, cache_root: Path) -> None:
    # `codejury demo` or `up` killed outright must not leave its Celery worker behind.
    with subprocess.Popen(
        [sys.executable, "-c", _CALLER, str(run_dir), str(cache_root / "orphan")],
        stdout=subprocess.PIPE,
    ) as caller:
        try:
            assert caller.stdout is not None
            (pid,) = marked_line(caller.stdout, b"worker pid ")
            worker_pid = int(pid)
            assert not exited(worker_pid)
            caller.kill()
            caller.wait(timeout=10)
            deadline = time.monotonic() + 30  # a poll, then Celery's warm shutdown
            while not exited(worker_pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert exited(worker_pid)
        finally:
            caller.kill()
