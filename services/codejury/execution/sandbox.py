"""Runs one untrusted program under bubblewrap inside a per-run cgroup.

Isolation, layer by layer:
- bubblewrap starts as an unprivileged uid/gid (never host root: a user namespace that
  maps the sandbox user to root would let it read root-owned files such as /etc/shadow);
- it unshares every namespace (user, pid, net with only ``lo``, ipc, uts, cgroup),
  mounts an allow-list read-only (/usr, /etc and the toolchain paths), a private
  size-limited tmpfs work dir and /tmp, a fresh /proc and a minimal /dev, and remounts
  its root read-only; /home, /root, /run, /sys and the project are simply not there;
- bubblewrap is started by the launcher's ``drop`` mode, which joins the run's cgroup
  (memory and process caps, CPU accounting, kill-all on timeout) as root and then
  drops to the sandbox user, so nothing of the run is ever outside the group;
- the first program inside is the launcher (``launcher.c``), which waits for the run's
  files, argv, environment and rlimits (CPU seconds, file size, no core dumps) and
  execs the program; stdout/stderr are read with a cap, and a flood kills the run.

Because a sandbox is complete before its program is known, ``warm_pool`` keeps some
started ahead of demand: a run then costs little more than the program itself. When the
program exits, every process of the run is sent SIGKILL before the outcome is returned;
the namespaces' teardown and the cgroup's removal finish in the background (``reaper``).
The outcome is data (``SandboxOutcome``); ``statuses.classify_run`` gives the status.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from codejury.core.logging import get_logger
from codejury.execution import launcher
from codejury.execution.cgroups import RunCgroup, check_writable, detect_version, sweep_stale
from codejury.execution.errors import InvalidRequestError, SandboxUnavailableError
from codejury.execution.process_io import Pumped, StatusReader, pump, read_all
from codejury.execution.reaper import Reaper
from codejury.execution.seccomp import filter_for_this_machine

if TYPE_CHECKING:
    from codejury.execution.warm_pool import WarmPool

log = get_logger(__name__)

WORKDIR = "/sandbox"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_BASE_ENV = {"PATH": DEFAULT_PATH, "HOME": WORKDIR, "LANG": "C.UTF-8", "TMPDIR": "/tmp"}


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Memory and processes are enforced by the cgroup."""

    timeout_s: float = 10.0
    cpu_time_s: float | None = None  # default: the wall-clock timeout
    memory_bytes: int = 1 << 30
    max_processes: int = 128  # threads count too: a JVM needs a few dozen
    max_output_bytes: int = 1 << 20  # beyond this the run is killed (OUTPUT_LIMIT)
    captured_output_bytes: int = 64 << 10  # what is kept of each stream
    max_file_bytes: int = 64 << 20  # RLIMIT_FSIZE
    workdir_bytes: int = 256 << 20  # size of the tmpfs work dir (and of /tmp)

    def validate(self) -> None:
        for name in ("timeout_s", "memory_bytes", "max_processes", "max_output_bytes"):
            if getattr(self, name) <= 0:
                raise InvalidRequestError(f"limits.{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Mount:
    """A host path made visible in the sandbox (read-only unless ``writable``)."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class SandboxRequest:
    argv: Sequence[str]
    files: Mapping[str, bytes] = field(default_factory=dict)  # relative to the work dir
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[Mount] = ()
    stdin: bytes = b""


@dataclass(frozen=True)
class SandboxOutcome:
    exit_code: int | None  # None when killed by a signal or never started
    signal: int | None
    timed_out: bool
    oom_killed: bool
    output_limited: bool
    pids_limited: bool
    wall_time_s: float
    cpu_time_s: float
    memory_peak_bytes: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    sandbox_error: str | None = None  # our failure, never the program's


@dataclass(frozen=True)
class SandboxConfig:
    uid: int = 65534
    gid: int = 65534
    cgroup_parent: str = "codejury"
    unsafe_no_sandbox: bool = False
    # Read-only host paths every run sees, besides /usr and /etc (e.g. /opt/codejury).
    extra_ro_paths: tuple[str, ...] = ()
    # Sandboxes kept started ahead of demand for runs without extra mounts (0: none).
    warm_pool: int = 0
    # Where the launcher is built; must be searchable by the sandbox user.
    state_dir: Path = Path("/var/cache/codejury")
    # Beyond namespaces: the seccomp filter of ``execution.seccomp`` and no nested user
    # namespaces (bubblewrap >= 0.8). Off only to measure what they cost.
    hardened: bool = True


class PreparedSandbox:
    """A started sandbox waiting in the launcher for its one program."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        cgroup: RunCgroup,
        status: StatusReader,
        fds: dict[str, int],
        mounts: tuple[Mount, ...],
        workdir_bytes: int,
    ) -> None:
        self.process = process
        self.cgroup = cgroup
        self.status = status
        self.fds = fds  # our pipe ends: "control" (write), "error" and "status" (read)
        self.mounts = mounts
        self.workdir_bytes = workdir_bytes

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close_fd(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def dispose(self) -> None:
        """Kill whatever is left and release everything (idempotent)."""
        self.cgroup.kill_all()
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        for name in list(self.fds):
            self.close_fd(name)
        self.cgroup.remove()


class Sandbox:
    """Runs ``SandboxRequest``s; ``check()`` raises when isolation is not available."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._bwrap = shutil.which("bwrap")
        self._launcher: Path | None = None
        self._fixed_argv: list[str] | None = None
        self._seccomp: bytes | None = None  # the BPF program every run gets (hardened)
        self._pool: WarmPool | None = None
        self._reaper = Reaper()

    def check(self) -> None:
        if self.config.unsafe_no_sandbox:
            return
        if self._bwrap is None:
            raise SandboxUnavailableError(
                "bubblewrap (bwrap) is not installed: `apt-get install bubblewrap` "
                "(bin/setup does it as root), or pass --unsafe-no-sandbox to run without isolation"
            )
        if os.geteuid() != 0:
            raise SandboxUnavailableError(
                "the sandbox needs root to create per-run cgroups and drop to the sandbox user; "
                "run the worker as root (in a cluster: a privileged sandbox pod), "
                "or pass --unsafe-no-sandbox"
            )
        detect_version()
        if self._launcher is None:
            atexit.register(self.close)  # finish the reaper's work; warm sandboxes die with us
            sweep_stale(self.config.cgroup_parent)
            check_writable(self.config.cgroup_parent)  # refuse now, not on the first run
            self._launcher = launcher.build(self.config.state_dir)
            self._fixed_argv = _fixed_bwrap_argv(
                self._bwrap, self._launcher, self.config.extra_ro_paths
            )
            self._seccomp = None
            if self.config.hardened:
                self._fixed_argv += _no_nested_user_namespaces(self._bwrap)
                self._seccomp = filter_for_this_machine()
                if self._seccomp is None:
                    log.warning(
                        "sandbox.no_seccomp_filter",
                        machine=platform.machine(),
                        why="the filter's system call numbers are x86-64's",
                    )
        if self.config.warm_pool and self._pool is None:
            from codejury.execution.warm_pool import WarmPool

            self._pool = WarmPool(self.prepare, size=self.config.warm_pool)

    def close(self) -> None:
        """Dispose of the warm sandboxes and of finished runs still being torn down (their
        processes would die with us, their cgroups not)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.settle()

    def settle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every finished run's sandbox is gone (processes reaped, cgroup
        removed); False if that took longer than ``timeout_s``."""
        return self._reaper.drain(timeout_s)

    # -- running -----------------------------------------------------------------------

    def run(self, request: SandboxRequest) -> SandboxOutcome:
        request.limits.validate()
        if not request.argv:
            raise InvalidRequestError("argv is empty: give the command to run")
        for name in request.files:
            checked_relative(name)
        if self.config.unsafe_no_sandbox:
            from codejury.execution.unsafe import run_unsafe

            log.warning("sandbox.unsafe_run", argv=list(request.argv)[:3])
            return run_unsafe(request)
        self.check()
        prepared = None
        if (
            self._pool is not None
            and not request.mounts
            and (request.limits.workdir_bytes == Limits().workdir_bytes)
        ):
            prepared = self._pool.take()
        if prepared is None:
            prepared = self.prepare(tuple(request.mounts), request.limits.workdir_bytes)
        try:
            return self._execute(prepared, request)
        finally:
            # Every process of the run has been sent SIGKILL by now; waiting for the
            # namespaces' teardown and removing the group need not delay the answer.
            self._reaper.submit(prepared.dispose)

    def prepare(
        self, mounts: tuple[Mount, ...] = (), workdir_bytes: int = Limits().workdir_bytes
    ) -> PreparedSandbox:
        """Start a sandbox up to its launcher, inside a fresh cgroup."""
        if self._launcher is None:
            self.check()
        cgroup = RunCgroup(self.config.cgroup_parent).create(
            memory_bytes=Limits().memory_bytes, max_processes=Limits().max_processes
        )
        ours: dict[str, int] = {}  # our ends: we read status and error, write control
        theirs: list[int] = []
        try:
            for name in ("status", "control", "error"):
                read_end, write_end = os.pipe()
                if name in ("status", "error"):
                    ours[name] = read_end
                    theirs.append(write_end)
                else:
                    ours[name] = write_end
                    theirs.append(read_end)
            status_w, control_r, error_w = theirs
            seccomp_r = None
            if self._seccomp is not None:
                # a few hundred bytes: the pipe holds them until bubblewrap reads them
                seccomp_r, seccomp_w = os.pipe()
                theirs.append(seccomp_r)
                try:
                    _write_all(seccomp_w, self._seccomp)
                finally:
                    os.close(seccomp_w)
            argv = self._bwrap_argv(
                mounts,
                workdir_bytes=workdir_bytes,
                status_fd=status_w,
                control_fd=control_r,
                error_fd=error_w,
                seccomp_fd=seccomp_r,
            )
            if self._launcher is None:
                raise SandboxUnavailableError("Sandbox.check() must succeed before a run")
            # The launcher joins the run's cgroup as root, so bubblewrap and all it starts
            # are accounted and killable from birth, then drops to the sandbox user and
            # execs bubblewrap. Python's own uid switch (Popen(user=...)) would force a
            # full fork() of this process instead of a vfork.
            process = subprocess.Popen(
                launcher.drop_argv(
                    self._launcher,
                    uid=self.config.uid,
                    gid=self.config.gid,
                    procs_files=cgroup.procs_files(),
                    argv=argv,
                ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=tuple(theirs),
                env={"PATH": DEFAULT_PATH},
            )
        except BaseException:
            for fd in [*ours.values(), *theirs]:
                os.close(fd)
            cgroup.remove()
            raise
        for fd in theirs:
            os.close(fd)
        return PreparedSandbox(
            process,
            cgroup=cgroup,
            status=StatusReader(ours["status"]),
            fds=ours,
            mounts=mounts,
            workdir_bytes=workdir_bytes,
        )

    def _execute(self, prepared: PreparedSandbox, request: SandboxRequest) -> SandboxOutcome:
        limits = request.limits
        cgroup = prepared.cgroup
        cgroup.set_limits(memory_bytes=limits.memory_bytes, max_processes=limits.max_processes)
        cpu = int(limits.cpu_time_s or limits.timeout_s) + 1
        message = launcher.encode(
            files=request.files,
            argv=request.argv,
            env={**_BASE_ENV, **request.env},
            cpu_soft_s=cpu,
            cpu_hard_s=cpu + 1,
            max_file_bytes=limits.max_file_bytes,
        )
        started = time.monotonic()
        process = prepared.process
        # BrokenPipe: the sandbox died before its launcher read; reported as ours below.
        with contextlib.suppress(BrokenPipeError):
            _write_all(prepared.fds["control"], message)
        prepared.close_fd("control")
        if process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(request.stdin)
            process.stdin.close()
        pumped = pump(
            process,
            started=started,
            timeout_s=limits.timeout_s,
            max_output_bytes=limits.max_output_bytes,
            captured_bytes=limits.captured_output_bytes,
            kill=cgroup.kill_all,
        )
        launch_error = read_all(prepared.fds["error"]).decode(errors="replace")
        status = prepared.status.finish()
        # stragglers that outlived the program's main process: killed now, gone by the
        # time the reaper has disposed of the sandbox
        cgroup.kill_all(wait=False)
        usage = cgroup.usage()
        return finish(
            pumped,
            status,
            usage.cpu_time_s,
            usage.memory_peak_bytes,
            oom_killed=usage.oom_killed,
            pids_limited=usage.pids_limited,
            launch_error=launch_error,
        )

    def _bwrap_argv(
        self,
        mounts: Sequence[Mount],
        *,
        workdir_bytes: int,
        status_fd: int,
        control_fd: int,
        error_fd: int,
        seccomp_fd: int | None = None,
    ) -> list[str]:
        if self._fixed_argv is None:
            raise SandboxUnavailableError("Sandbox.check() must succeed before a run")
        argv = list(self._fixed_argv)
        argv += ["--size", str(workdir_bytes), "--tmpfs", "/tmp"]
        argv += ["--size", str(workdir_bytes), "--tmpfs", WORKDIR]
        for mount in mounts:
            argv += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
        # The root bwrap builds is a tmpfs; make it read-only once everything is mounted
        # (the work dir and /tmp are their own mounts and stay writable).
        argv += ["--remount-ro", "/", "--clearenv", "--chdir", WORKDIR]
        argv += ["--json-status-fd", str(status_fd)]
        if seccomp_fd is not None:
            argv += ["--seccomp", str(seccomp_fd)]
        argv += ["--", launcher.IN_SANDBOX, str(control_fd), str(error_fd)]
        return argv


def _fixed_bwrap_argv(bwrap: str, launcher_path: Path, extra_ro_paths: Sequence[str]) -> list[str]:
    """The part of every run's bubblewrap command line that depends only on the host
    (built once: it stats the root's top-level entries)."""
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    argv += ["--cap-drop", "ALL"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        path = Path(top)
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            argv += ["--ro-bind", top, top]
    argv += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for extra in extra_ro_paths:
        if Path(extra).exists():
            argv += ["--ro-bind", extra, extra]
    argv += ["--ro-bind", str(launcher_path), launcher.IN_SANDBOX]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    return argv


def _no_nested_user_namespaces(bwrap: str) -> list[str]:
    """bubblewrap's flags that keep the program from creating user namespaces of its own
    (in one it would be uid 0, and could mount over its own /etc), where bubblewrap has
    them (0.8 and later); else none, said in the log."""
    try:
        usage = subprocess.run(
            [bwrap, "--help"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        usage = ""
    if "--disable-userns" in usage:
        return ["--unshare-user", "--disable-userns"]
    log.warning(
        "sandbox.nested_userns_allowed", why="bubblewrap before 0.8 has no --disable-userns"
    )
    return []


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def checked_relative(name: str) -> str:
    if not name or name.startswith("/") or ".." in Path(name).parts:
        raise InvalidRequestError(f"files: {name!r} must be a relative path inside the work dir")
    return name


def finish(
    raw: Pumped,
    status: Mapping[str, int],
    cpu_time_s: float,
    memory_peak_bytes: int,
    *,
    oom_killed: bool,
    pids_limited: bool,
    launch_error: str = "",
) -> SandboxOutcome:
    """Combine what was measured into the outcome (``status`` as bwrap reports it)."""
    sandbox_error = None
    exit_code: int | None = None
    sig: int | None = None
    if launch_error:
        sandbox_error = launch_error.strip()
    elif "exit-code" in status:
        code = status["exit-code"]
        # bwrap reports a child killed by signal N as 128 + N (the unsafe path mimics it).
        if 128 < code < 128 + signal.NSIG:
            sig = code - 128
        else:
            exit_code = code
    elif raw.timed_out or raw.output_limited:
        sig = signal.SIGKILL  # we killed the run
    elif raw.returncode < 0:
        sig = -raw.returncode  # bwrap itself was killed (e.g. by the OOM killer)
    else:
        # bwrap exits without reporting the program's exit when its own setup failed
        # (a mount, a namespace): the program never ran, so this is ours, not the program's.
        sandbox_error = (
            f"bubblewrap failed before the program ran (exit {raw.returncode}): "
            + raw.stderr.data.decode(errors="replace").strip()[-500:]
        )
    return SandboxOutcome(
        exit_code=exit_code,
        signal=sig,
        timed_out=raw.timed_out,
        oom_killed=oom_killed,
        output_limited=raw.output_limited,
        pids_limited=pids_limited,
        wall_time_s=raw.wall_time_s,
        cpu_time_s=cpu_time_s,
        memory_peak_bytes=memory_peak_bytes,
        stdout=bytes(raw.stdout.data),
        stderr=bytes(raw.stderr.data),
        stdout_truncated=raw.stdout.truncated,
        stderr_truncated=raw.stderr.truncated,
        sandbox_error=sandbox_error,
    )
