"""The cluster-shaped run on this machine (issue 15, item 5): build the images with podman,
start the chart's local profile with podman kube play, Solve from the host, kube down.

Behind the ``podman`` marker (bin/test -m podman): it builds images (minutes the first
time, seconds when podman's layer cache holds them). It needs podman, runc and, where no
registry answers, mmdebstrap (bin/setup does not install them: apt-get install podman runc
mmdebstrap)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.podman, pytest.mark.timeout(3600)]


def _codejury(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    return subprocess.run(
        [sys.executable, "-m", "codejury", *args],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        cwd=cwd,
        timeout=3000,
        check=False,
    )


def test_the_chart_runs_under_podman_and_answers_a_solve(tmp_path: Path) -> None:
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("needs podman and runc: apt-get install podman runc mmdebstrap")
    started = time.monotonic()
    only = ["--only", "runtime", "--only", "sandbox", "--only", "redis"]
    built = _codejury("deploy", "images", *only, "--logs", str(tmp_path / "logs"), cwd=tmp_path)
    build_s = time.monotonic() - started
    assert built.returncode == 0, built.stdout + built.stderr
    print(f"images built in {build_s:.0f}s\n{built.stdout}")
    ran = _codejury("deploy", "local", "--workdir", str(tmp_path / "cluster"), cwd=tmp_path)
    print(ran.stdout)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "solved: chosen " in ran.stdout
    assert "sandbox task(s) ran in the sandbox-worker container" in ran.stdout
    assert "nothing left behind" in ran.stdout


def test_the_sandbox_worker_refuses_to_start_without_its_privileges() -> None:
    """The sandbox image's worker in an unprivileged container (a pod without
    worker.privileged): one line naming the fix, not a worker that fails every run."""
    from codejury.deploy.podman import image_exists, podman

    ref = "localhost/codejury-sandbox:0.1.0"
    if shutil.which("podman") is None or not image_exists(ref):
        pytest.skip(f"needs podman and {ref} (codejury deploy images --only sandbox)")
    done = podman("run", "--rm", ref, "worker", timeout_s=300)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "writable cgroup tree" in lines[0] and "worker.privileged" in lines[0]
