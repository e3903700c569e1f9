"""How many CPUs this process may use, and how many threads a model runtime gets.

torch (OpenMP), ONNX Runtime and llama.cpp size their thread pools from the host's
cores. In a container with a CPU limit, or in the embedded deployment where the
generator and the reward model's server share one machine, that is more threads than
there are cores for them, and threads that wait for each other by spinning then stall
each other: on 2 cores, the embedded pipeline's generator and model server with 2 torch
threads each answered 2.6-3.0 Solve/s, with one each 5.4-6.5 (``codejury bench
pipeline --concurrency 16``, 2026-12-07).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_CGROUP_ROOT = Path("/sys/fs/cgroup")


def quota_cpus(quota: str, period: str) -> int | None:
    """The CPUs a cgroup quota allows, rounded up (a quota of 1.5 CPUs can keep two
    threads busy half the time); None when there is no quota (``max``, or v1's -1)."""
    quota, period = quota.strip(), period.strip()
    if quota in ("max", "-1", "") or not period:
        return None
    try:
        allowed, every = int(quota), int(period)
    except ValueError:
        return None
    if allowed <= 0 or every <= 0:
        return None
    return max(1, math.ceil(allowed / every))


def quota_files(proc_cgroup: str) -> list[tuple[Path, Path | None]]:
    """Where this process's CPU quota may be, given ``/proc/self/cgroup``: (cgroup v2's
    ``cpu.max``, None) or (v1's quota file, its period file), the process's own cgroup
    first, then the hierarchy's root (in a container the cgroup namespace makes its own
    cgroup the root)."""
    found: list[tuple[Path, Path | None]] = []
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":
            for base in dict.fromkeys((_CGROUP_ROOT / relative, _CGROUP_ROOT)):
                found.append((base / "cpu.max", None))
        elif "cpu" in controllers.split(","):
            v1 = _CGROUP_ROOT / "cpu"
            for base in dict.fromkeys((v1 / relative, v1)):
                found.append((base / "cpu.cfs_quota_us", base / "cpu.cfs_period_us"))
    return found


def _cgroup_quota() -> int | None:
    try:
        proc_cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    for quota_file, period_file in quota_files(proc_cgroup):
        try:
            if period_file is None:  # v2: "quota period"
                quota, period = [*quota_file.read_text().split(), "", ""][:2]
            else:
                quota, period = quota_file.read_text(), period_file.read_text()
        except OSError:
            continue
        return quota_cpus(quota, period)
    return None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), capped by its cgroup's quota."""
    cpus = len(os.sched_getaffinity(0))
    quota = _cgroup_quota()
    return max(1, min(cpus, quota) if quota is not None else cpus)


def runtime_threads(setting: int | None) -> int | None:
    """The threads a model runtime should use: ``setting`` when set; else the usable CPUs
    when something (a quota, an affinity mask) leaves fewer than the host has; else None,
    the runtime's own choice (torch takes the physical cores)."""
    if setting is not None:
        return setting
    usable = usable_cpus()
    return usable if usable < (os.cpu_count() or usable) else None


def share(cpus: int, ways: int) -> int:
    """Each of ``ways`` processes' share of ``cpus`` CPUs, at least one."""
    return max(1, cpus // max(1, ways))
