"""Runs one untrusted program under bubblewrap inside a per-run cgroup.

Isolation, layer by layer:
- the process drops to an unprivileged uid/gid (never host root: a user namespace that
  maps the sandbox user to root would let it read root-owned files such as /etc/shadow)
  before bubblewrap starts, so bubblewrap builds its namespaces as that user;
- bubblewrap unshares every namespace (user, pid, net with only ``lo``, ipc, uts,
  cgroup), mounts an allow-list read-only (/usr, /etc and the toolchain paths), a private
  size-limited tmpfs work dir and /tmp, a fresh /proc and a minimal /dev; /home, /root,
  /run, /sys and the project are simply not there;
- the per-run cgroup caps memory and the number of processes, accounts CPU time, and
  ``kill_all`` ends every process of the run on timeout (pid-namespace init death would
  too, but the cgroup also covers the unsafe mode's absence of namespaces);
- rlimits: CPU seconds (SIGXCPU), file size (SIGXFSZ), no core dumps;
- stdout/stderr are read with a cap; a program that floods them is killed.

The outcome is data (``SandboxOutcome``); ``statuses.classify`` turns it into a status.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codejury.core.logging import get_logger
from codejury.execution.cgroups import RunCgroup, detect_version
from codejury.execution.errors import InvalidRequestError, SandboxUnavailableError

log = get_logger(__name__)

WORKDIR = "/sandbox"
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_READ_CHUNK = 65536


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


class Sandbox:
    """Runs ``SandboxRequest``s; ``check()`` raises when isolation is not available."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._bwrap = shutil.which("bwrap")

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

    # -- running -----------------------------------------------------------------------

    def run(self, request: SandboxRequest) -> SandboxOutcome:
        request.limits.validate()
        if not request.argv:
            raise InvalidRequestError("argv is empty: give the command to run")
        if self.config.unsafe_no_sandbox:
            log.warning("sandbox.unsafe_run", argv=list(request.argv)[:3])
            return self._run_unsafe(request)
        self.check()
        limits = request.limits
        with RunCgroup(self.config.cgroup_parent).create(
            memory_bytes=limits.memory_bytes, max_processes=limits.max_processes
        ) as cgroup:
            memfds = [self._memfd(name, data) for name, data in request.files.items()]
            status_r, status_w = os.pipe()
            block_r, block_w = os.pipe()
            # Each fd is closed exactly once, by whoever gets there first: a second close
            # could hit a descriptor number another thread has been given since.
            to_close = [status_w, block_r]
            status_reader = _StatusReader(status_r)
            try:
                argv = self._bwrap_argv(request, [fd for _, fd in memfds], status_w, block_r)

                def confine(process: subprocess.Popen[bytes]) -> None:
                    """bwrap has forked the sandbox's first process and waits on the
                    block fd: put both in the cgroup, then let the program start."""
                    child = status_reader.child_pid(timeout_s=10)
                    for pid in [process.pid] if child is None else [process.pid, child]:
                        cgroup.add(pid)
                    os.write(block_w, b"go")

                outcome = self._spawn_and_wait(
                    argv,
                    request,
                    pass_fds=[*(fd for _, fd in memfds), status_w, block_r],
                    close_after_spawn=to_close,
                    kill=lambda _pid: cgroup.kill_all(),
                    user=(self.config.uid, self.config.gid),
                    after_spawn=confine,
                )
                status = status_reader.finish()
            finally:
                for fd in [*(fd for _, fd in memfds), *to_close, status_r, block_w]:
                    os.close(fd)
            cgroup.kill_all()  # stragglers that outlived the program's main process
            usage = cgroup.usage()
        return _finish(
            outcome,
            status,
            usage.cpu_time_s,
            usage.memory_peak_bytes,
            oom_killed=usage.oom_killed,
            pids_limited=usage.pids_limited,
        )

    @staticmethod
    def _memfd(name: str, data: bytes) -> tuple[str, int]:
        _checked_relative(name)
        fd = os.memfd_create("codejury-file", os.MFD_CLOEXEC)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        return name, fd

    def _bwrap_argv(
        self, request: SandboxRequest, fds: list[int], status_fd: int, block_fd: int
    ) -> list[str]:
        assert self._bwrap is not None  # check() ran
        limits = request.limits
        argv = [
            self._bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
        ]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            path = Path(top)
            if path.is_symlink():
                argv += ["--symlink", os.readlink(path), top]
            elif path.is_dir():
                argv += ["--ro-bind", top, top]
        argv += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
        for extra in self.config.extra_ro_paths:
            if Path(extra).exists():
                argv += ["--ro-bind", extra, extra]
        argv += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            str(limits.workdir_bytes),
            "--tmpfs",
            "/tmp",
            "--size",
            str(limits.workdir_bytes),
            "--tmpfs",
            WORKDIR,
        ]
        for (name, _), fd in zip(request.files.items(), fds, strict=True):
            parent = str(Path(WORKDIR, name).parent)
            if parent != WORKDIR:
                argv += ["--dir", parent]
            argv += ["--file", str(fd), f"{WORKDIR}/{name}"]
        for mount in request.mounts:
            argv += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
        env = {"PATH": _DEFAULT_PATH, "HOME": WORKDIR, "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        env.update(request.env)
        # The root bwrap builds is a tmpfs; make it read-only once everything is mounted
        # (the work dir and /tmp are their own mounts and stay writable).
        argv += ["--remount-ro", "/", "--clearenv"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += [
            "--chdir",
            WORKDIR,
            "--json-status-fd",
            str(status_fd),
            "--block-fd",
            str(block_fd),
            "--",
            *_prlimit_argv(request.limits),
            *request.argv,
        ]
        return argv

    def _spawn_and_wait(
        self,
        argv: list[str],
        request: SandboxRequest,
        *,
        pass_fds: Sequence[int],
        close_after_spawn: list[int],
        kill: Callable[[int], None],
        preexec: Callable[[], None] | None = None,
        user: tuple[int, int] | None = None,
        after_spawn: Callable[[subprocess.Popen[bytes]], None] | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        new_session: bool = False,
    ) -> _Raw:
        limits = request.limits
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if request.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=tuple(pass_fds),
            preexec_fn=preexec,  # noqa: PLW1509 - only the unsafe mode uses it
            user=user[0] if user else None,
            group=user[1] if user else None,
            extra_groups=[] if user else None,
            cwd=cwd,
            env=dict(env) if env is not None else {"PATH": _DEFAULT_PATH},
            start_new_session=new_session,
        )
        while close_after_spawn:
            os.close(close_after_spawn.pop())
        if after_spawn is not None:
            try:
                after_spawn(process)
            except BaseException:
                # Never released from the block fd: killing bwrap ends the sandbox
                # (--die-with-parent); the caller closes our ends of the pipes.
                process.kill()
                process.wait(timeout=10)
                kill(process.pid)
                raise
        if request.stdin and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(request.stdin)
            process.stdin.close()
        out, err, timed_out, output_limited = _pump(process, limits, started, kill)
        return _Raw(
            returncode=process.returncode,
            timed_out=timed_out,
            output_limited=output_limited,
            wall_time_s=time.monotonic() - started,
            stdout=out,
            stderr=err,
        )

    def _run_unsafe(self, request: SandboxRequest) -> SandboxOutcome:
        """No namespaces, no cgroups: a temp dir, rlimits, a process group. Opt-in only."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="codejury-unsafe-") as tmp:
            for name, data in request.files.items():
                target = Path(tmp, _checked_relative(name))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            for mount in request.mounts:
                if mount.target.startswith(WORKDIR + "/"):
                    link = Path(tmp, mount.target[len(WORKDIR) + 1 :])
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(mount.source)
            env = {"PATH": _DEFAULT_PATH, "HOME": tmp, "LANG": "C.UTF-8", "TMPDIR": tmp}
            env.update({k: v.replace(WORKDIR, tmp) for k, v in request.env.items()})
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            raw = self._spawn_and_wait(
                [a.replace(WORKDIR, tmp) for a in request.argv],
                request,
                preexec=lambda: _set_rlimits(request.limits),
                pass_fds=(),
                close_after_spawn=[],
                kill=_kill_process_group,
                cwd=tmp,
                env=env,
                new_session=True,
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if raw.returncode < 0:
            status = {"child-pid": 0, "exit-code": 128 - raw.returncode}
        else:
            status = {"child-pid": 0, "exit-code": raw.returncode}
        return _finish(
            raw, status, cpu, after.ru_maxrss * 1024, oom_killed=False, pids_limited=False
        )


def _kill_process_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _checked_relative(name: str) -> str:
    if not name or name.startswith("/") or ".." in Path(name).parts:
        raise InvalidRequestError(f"files: {name!r} must be a relative path inside the work dir")
    return name


def _pump(
    process: subprocess.Popen[bytes], limits: Limits, started: float, kill: Callable[[int], None]
) -> tuple[_Capture, _Capture, bool, bool]:
    """Read stdout/stderr until the program ends, the deadline passes or it floods us.

    Returns (stdout, stderr, timed out, output limited); the process has exited."""
    out = _Capture(limits.captured_output_bytes)
    err = _Capture(limits.captured_output_bytes)
    timed_out = output_limited = False
    deadline = started + limits.timeout_s
    if process.stdout is None or process.stderr is None:
        raise RuntimeError("the program's stdout and stderr must be pipes")
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, out)
    selector.register(process.stderr, selectors.EVENT_READ, err)
    try:
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                kill(process.pid)
                break
            for key, _ in selector.select(timeout=min(remaining, 0.5)):
                chunk = os.read(key.fd, _READ_CHUNK)
                if chunk:
                    key.data.add(chunk)
                else:
                    selector.unregister(key.fileobj)
            if out.total + err.total > limits.max_output_bytes:
                output_limited = True
                kill(process.pid)
                break
        # Output closed: the program is ending; allow it the rest of its time to exit.
        grace = (
            5.0 if (timed_out or output_limited) else max(0.0, deadline - time.monotonic()) + 0.5
        )
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill(process.pid)
            process.wait(timeout=5)
    finally:
        selector.close()
        process.stdout.close()
        process.stderr.close()
    return out, err, timed_out, output_limited


@dataclass
class _Capture:
    cap: int
    data: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)


@dataclass(frozen=True)
class _Raw:
    returncode: int
    timed_out: bool
    output_limited: bool
    wall_time_s: float
    stdout: _Capture
    stderr: _Capture


def _cpu_limit_s(limits: Limits) -> int:
    return int(limits.cpu_time_s or limits.timeout_s) + 1


def _set_rlimits(limits: Limits) -> None:
    """CPU seconds, file size, no core dumps, for the calling process (unsafe mode)."""
    cpu = _cpu_limit_s(limits)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _prlimit_argv(limits: Limits) -> list[str]:
    """The same limits inside the sandbox: util-linux's prlimit sets them and execs the
    program (a process in bwrap's user namespace cannot be prlimit-ed from outside)."""
    cpu = _cpu_limit_s(limits)
    return [
        "/usr/bin/prlimit",
        f"--cpu={cpu}:{cpu + 1}",
        f"--fsize={limits.max_file_bytes}",
        "--core=0",
        "--",
    ]


class _StatusReader:
    """bwrap's --json-status-fd: {"child-pid": N, ...} once the sandbox's first process
    exists (it then waits on --block-fd), {"exit-code": N} when the program ends."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self.status: dict[str, int] = {}

    def _parse(self) -> None:
        decoder = json.JSONDecoder()
        text = self._buffer.decode(errors="replace")
        pos = 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            try:
                obj, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
            if isinstance(obj, dict):
                self.status.update({k: v for k, v in obj.items() if isinstance(v, int)})
            pos = end
        self._buffer = text[pos:].encode()

    def child_pid(self, timeout_s: float) -> int | None:
        """Wait for the child-pid document; None if bwrap exited first (setup failed)."""
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while "child-pid" not in self.status:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(timeout=remaining):
                    raise SandboxUnavailableError(
                        f"bubblewrap did not report its child within {timeout_s:g}s"
                    )
                chunk = os.read(self._fd, _READ_CHUNK)
                if not chunk:
                    return None
                self._buffer += chunk
                self._parse()
        return self.status["child-pid"]

    def finish(self) -> dict[str, int]:
        while chunk := os.read(self._fd, _READ_CHUNK):
            self._buffer += chunk
        self._parse()
        return self.status


def _finish(
    raw: _Raw,
    status: Mapping[str, int],
    cpu_time_s: float,
    memory_peak_bytes: int,
    *,
    oom_killed: bool,
    pids_limited: bool,
) -> SandboxOutcome:
    sandbox_error = None
    exit_code: int | None = None
    sig: int | None = None
    if "exit-code" in status:
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
