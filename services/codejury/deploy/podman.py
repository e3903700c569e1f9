"""Running podman: with CodeJury's containers.conf, a timeout on every call, and the
tools it needs checked first (one line naming the package when one is missing)."""

from __future__ import annotations

import os
import shutil
import subprocess

from codejury.deploy import SOURCE_ROOT
from codejury.deploy.errors import DeployError, ImageBuildError

CONTAINERS_CONF = SOURCE_ROOT / "images" / "containers.conf"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def preflight() -> None:
    """podman and runc present, or one line naming the package to install."""
    if shutil.which("podman") is None:
        raise ImageBuildError("podman is not installed: apt-get install podman runc")
    if shutil.which("runc") is None:
        raise ImageBuildError(
            "runc is not installed (podman here needs it: Debian's crun refuses this "
            "machine's cgroup layout): apt-get install runc"
        )


def podman(
    *args: str, timeout_s: float, error: type[DeployError] = ImageBuildError
) -> subprocess.CompletedProcess[str]:
    """``podman args...``, its output captured; ``error`` when it outlasts ``timeout_s``."""
    try:
        return subprocess.run(
            ["podman", *args],
            capture_output=True,
            text=True,
            env=podman_env(),
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"podman {' '.join(args[:2])} did not finish in {timeout_s:g}s") from exc


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, timeout_s=60).returncode == 0
