"""A child a codejury process started goes when that parent dies, even by SIGKILL, and
goes by its own graceful path (the stop event), not killed mid-work."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from codejury.core.processes import PARENT_PID_ENV, die_with_parent

from tests.children import exited

# The child: a service's shape (the stop event its SIGTERM sets), then a clean exit that
# leaves a mark; if the event never comes, it says so.
CHILD = """
import sys
from codejury.cli.app import stop_signal
stop = stop_signal()
print("child ready", flush=True)
outcome = "graceful" if stop.wait(60) else "never stopped"
open(sys.argv[1], "w").write(outcome)
"""

# The parent starts the child as the deployments do (the variable names the parent) and
# prints its pid, then waits to be killed.
PARENT = """
import os, subprocess, sys, time
from codejury.core.processes import PARENT_PID_ENV
child = subprocess.Popen(
    [sys.executable, "-c", sys.argv[1], sys.argv[2]],
    env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
    stdout=subprocess.PIPE, start_new_session=True,
)
assert child.stdout.readline().strip() == b"child ready"
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_child_stops_gracefully_when_its_parent_is_killed(tmp_path: Path) -> None:
    mark = tmp_path / "outcome"
    with subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, str(mark)], stdout=subprocess.PIPE
    ) as parent:
        try:
            assert parent.stdout is not None
            child_pid = int(parent.stdout.readline())
            time.sleep(1.5)  # three polls with the parent alive: the child stays
            assert not exited(child_pid) and not mark.exists()
            parent.kill()
            parent.wait(timeout=10)
            deadline = time.monotonic() + 15
            while not (mark.exists() and exited(child_pid)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert mark.read_text() == "graceful"
            assert exited(child_pid)
        finally:
            parent.kill()


def test_without_the_variable_nothing_is_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARENT_PID_ENV, raising=False)
    die_with_parent()
    assert "die-with-parent" not in {thread.name for thread in threading.enumerate()}


# Run in a child of its own: the watcher it starts lives as long as its process.
GRANDPARENT_CHECK = """
import os, subprocess, sys, time
from codejury.core.processes import PARENT_PID_ENV, die_with_parent
os.environ[PARENT_PID_ENV] = str(os.getppid())  # the test: alive throughout
die_with_parent(poll_s=0.05)
time.sleep(0.3)  # several polls: the parent lives, so no SIGTERM (it would end us)
inherited = subprocess.run(
    [sys.executable, "-c", f"import os; print(os.environ.get({PARENT_PID_ENV!r}))"],
    capture_output=True, text=True, check=True,
).stdout.strip()
print(inherited)
"""


def test_the_variable_is_not_passed_on_to_grandchildren() -> None:
    # A grandchild that inherited it would take the grandparent's pid for its parent's
    # and stop itself at once.
    done = subprocess.run(
        [sys.executable, "-c", GRANDPARENT_CHECK],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
