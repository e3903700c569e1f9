"""Per-run control groups: memory, process-count and CPU accounting, and kill-all.

Both hierarchies are supported: cgroup v2 (one unified tree, ``cgroup.kill``) and the
v1 layout with one mount per controller (memory, pids, cpuacct, freezer), which is what
these machines run. The launcher joins a run's group before it starts bubblewrap
(``procs_files``; see launcher.c's drop mode), so nothing of the run escapes accounting,
and ``kill_all`` reaches every process of it even if it double-forked or ``setsid``-ed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codejury.execution.errors import SandboxUnavailableError

CGROUP_ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLERS = ("memory", "pids", "cpuacct", "freezer")
_KILL_ROUNDS = 50
_POLL_S = 0.0002  # how often an emptying group is looked at (a dying process takes ~1 ms)


@dataclass(frozen=True)
class CgroupUsage:
    cpu_time_s: float
    memory_peak_bytes: int
    oom_killed: bool
    pids_limited: bool


# The hot path (a few files per run) uses plain os calls on str paths: pathlib and
# buffered file objects cost more than the writes themselves.
def _write(path: Path | str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path | str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(fd)


def _kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


@functools.cache
def detect_version(root: Path = CGROUP_ROOT) -> Literal["v1", "v2"]:
    """Which hierarchy carries the memory and pids controllers, or a clear error.

    Cached: a machine does not switch hierarchies under a running worker."""
    controllers = root / "cgroup.controllers"
    if controllers.exists() and {"memory", "pids"} <= set(_read(controllers).split()):
        return "v2"
    if all((root / c / "cgroup.procs").exists() for c in _V1_CONTROLLERS):
        return "v1"
    raise SandboxUnavailableError(
        f"no usable cgroups under {root}: need cgroup v2 with the memory and pids controllers "
        f"or cgroup v1 with {', '.join(_V1_CONTROLLERS)} mounted and writable (run the "
        "worker as root or with a delegated cgroup), or pass --unsafe-no-sandbox"
    )


class RunCgroup:
    """One run's group. Create, let the launcher join it, read usage, ``kill_all``, remove."""

    def __init__(self, parent: str, *, root: Path = CGROUP_ROOT) -> None:
        self.version = detect_version(root)
        # The creator's pid in the name lets a later process sweep groups of dead ones.
        self.name = f"{parent}/run-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        if self.version == "v2":
            self._dirs = {"": root / self.name}
        else:
            self._dirs = {c: root / c / self.name for c in _V1_CONTROLLERS}
        # str paths of the files read or written on every run
        self._procs = [f"{d}/cgroup.procs" for d in self._dirs.values()]
        self._pids_procs = f"{self._dir('pids')}/cgroup.procs"
        self._root = root
        self._parent = parent
        self._limits: tuple[int, int] | None = None  # (memory, processes) as last written

    # -- lifecycle ---------------------------------------------------------------------

    def create(self, *, memory_bytes: int, max_processes: int) -> RunCgroup:
        try:
            if self.version == "v2":
                self._prepare_v2_parent()
            for directory in self._dirs.values():
                directory.mkdir(parents=True, exist_ok=False)
            if self.version == "v2":
                with contextlib.suppress(FileNotFoundError):
                    _write(self._dir("memory") / "memory.swap.max", "0")
            self.set_limits(memory_bytes=memory_bytes, max_processes=max_processes)
        except OSError as exc:
            # EACCES/EPERM: not root, no delegation. EROFS: a container whose cgroup tree
            # is mounted read-only (an unprivileged pod). Anything else is not ours to say.
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            self.remove()
            raise SandboxUnavailableError(
                f"cannot create cgroup {self.name} ({exc.strerror}: {exc.filename}): the sandbox "
                "needs a writable cgroup tree: run the worker as root on the host, or in a "
                "privileged pod (the chart's worker.privileged), or give it a delegated cgroup; "
                "or pass --unsafe-no-sandbox"
            ) from exc
        return self

    def set_limits(self, *, memory_bytes: int, max_processes: int) -> None:
        # A warm sandbox's group was created with the default limits; most runs ask for
        # exactly those, and every cgroup file write is a syscall round on the hot path.
        if self._limits == (memory_bytes, max_processes):
            return
        mem, pids = self._dir("memory"), self._dir("pids")
        if self.version == "v2":
            _write(mem / "memory.max", str(memory_bytes))
        else:
            # memsw (memory + swap) must stay >= the memory limit: order the writes so.
            memsw = mem / "memory.memsw.limit_in_bytes"
            current = int(_read(mem / "memory.limit_in_bytes"))
            if memory_bytes > current and memsw.exists():
                _write(memsw, str(memory_bytes))
                _write(mem / "memory.limit_in_bytes", str(memory_bytes))
            else:
                _write(mem / "memory.limit_in_bytes", str(memory_bytes))
                if memsw.exists():
                    with contextlib.suppress(OSError):
                        _write(memsw, str(memory_bytes))
        _write(pids / "pids.max", str(max_processes))
        self._limits = (memory_bytes, max_processes)

    def _prepare_v2_parent(self) -> None:
        parent = self._root / self._parent
        if not parent.exists():
            parent.mkdir(parents=True, exist_ok=True)
        enabled = set(_read(parent / "cgroup.subtree_control").split())
        wanted = {"memory", "pids", "cpu"} & set(_read(parent / "cgroup.controllers").split())
        missing = wanted - enabled
        if missing:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(missing)))

    def _dir(self, controller: str) -> Path:
        return self._dirs[""] if self.version == "v2" else self._dirs[controller]

    def procs_files(self) -> list[str]:
        """The cgroup.procs files the launcher writes itself into, one per hierarchy."""
        return list(self._procs)

    def pids(self) -> list[int]:
        try:
            text = _read(self._pids_procs)
        except FileNotFoundError:
            return []
        return [int(p) for p in text.split()]

    def kill_all(self, *, wait: bool = True) -> None:
        """SIGKILL every process in the group, including ones that forked away.

        On return every process of the group has been sent SIGKILL, so none runs user
        code again. With ``wait`` the group is also empty: the killed have finished
        exiting (their namespaces torn down), which can take milliseconds the caller of a
        run need not wait for (``Sandbox`` leaves that to its reaper)."""
        if not self.pids():
            return  # the usual case after a run: an empty group cannot fork
        if self.version == "v2":
            kill_file = self._dirs[""] / "cgroup.kill"
            if kill_file.exists():
                _write(kill_file, "1")  # atomic: forks racing with it are killed too
                if wait:
                    self._wait_empty()
                return
        freezer = self._dirs.get("freezer")
        if freezer is not None:  # freeze first so a fork bomb cannot outrun the kills
            with contextlib.suppress(OSError):
                _write(freezer / "freezer.state", "FROZEN")
        signalled: set[int] = set()
        for _ in range(_KILL_ROUNDS):
            pids = self.pids()
            # Waiting, kill whatever is listed until nothing is; not waiting, stop once a
            # listing shows no process that has not been sent SIGKILL (a killed process
            # cannot fork: the kernel aborts a fork with a fatal signal pending).
            targets = pids if wait else [p for p in pids if p not in signalled]
            if not targets:
                break
            for pid in targets:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            signalled.update(targets)
            if freezer is not None:
                with contextlib.suppress(OSError):
                    _write(freezer / "freezer.state", "THAWED")  # SIGKILL lands on thaw
            time.sleep(_POLL_S)
        if wait:
            self._wait_empty()

    def _wait_empty(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.pids() and time.monotonic() < deadline:
            time.sleep(_POLL_S)

    def usage(self) -> CgroupUsage:
        if self.version == "v2":
            d = self._dirs[""]
            cpu = _kv(_read(d / "cpu.stat")).get("usage_usec", 0) / 1e6
            peak_file = d / "memory.peak"
            peak = int(_read(peak_file)) if peak_file.exists() else 0
            oom = _kv(_read(d / "memory.events")).get("oom_kill", 0) > 0
            pids_limited = _kv(_read(d / "pids.events")).get("max", 0) > 0
        else:
            cpu = int(_read(self._dirs["cpuacct"] / "cpuacct.usage")) / 1e9
            mem = self._dirs["memory"]
            peak = int(_read(mem / "memory.max_usage_in_bytes"))
            control = _kv(_read(mem / "memory.oom_control"))
            oom = control.get("oom_kill", 0) > 0 or (
                "oom_kill" not in control and int(_read(mem / "memory.failcnt")) > 0
            )
            pids_limited = _kv(_read(self._dirs["pids"] / "pids.events")).get("max", 0) > 0
        return CgroupUsage(cpu, peak, oom, pids_limited)

    def remove(self) -> None:
        for directory in self._dirs.values():
            for _ in range(100):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: the last process is still being reaped
                    time.sleep(0.005)

    def __enter__(self) -> RunCgroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill_all()
        self.remove()


def check_writable(parent: str, *, root: Path = CGROUP_ROOT) -> None:
    """Create and remove one group under ``parent``: SandboxUnavailableError now, at start,
    rather than on the first run."""
    with RunCgroup(parent, root=root).create(memory_bytes=64 << 20, max_processes=8):
        pass


def sweep_stale(parent: str, *, root: Path = CGROUP_ROOT) -> int:
    """Remove empty run groups left by processes that died (e.g. SIGKILLed workers).

    Returns how many were removed. Groups of live processes are never touched."""
    removed = 0
    for directory in sorted(root.glob(f"**/{parent}/run-*")):
        try:
            creator = int(directory.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if Path(f"/proc/{creator}").exists():
            continue
        with contextlib.suppress(OSError):  # not empty, or already gone: leave it
            directory.rmdir()
            removed += 1
    return removed
