"""Running WITHOUT isolation (``--unsafe-no-sandbox``): a temp dir, rlimits and a process
group. For machines where bubblewrap or cgroups cannot run and the code is trusted."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from codejury.execution.process_io import pump
from codejury.execution.sandbox import (
    DEFAULT_PATH,
    WORKDIR,
    Limits,
    SandboxOutcome,
    SandboxRequest,
    checked_relative,
    finish,
)


def _rlimits(limits: Limits) -> None:
    cpu = int(limits.cpu_time_s or limits.timeout_s) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_unsafe(request: SandboxRequest) -> SandboxOutcome:
    limits = request.limits
    with tempfile.TemporaryDirectory(prefix="codejury-unsafe-") as tmp:
        for name, data in request.files.items():
            target = Path(tmp, checked_relative(name))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        for mount in request.mounts:  # sandbox paths under the work dir become symlinks
            if mount.target.startswith(WORKDIR + "/"):
                link = Path(tmp, mount.target[len(WORKDIR) + 1 :])
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(mount.source)
        env = {"PATH": DEFAULT_PATH, "HOME": tmp, "LANG": "C.UTF-8", "TMPDIR": tmp}
        env.update({k: v.replace(WORKDIR, tmp) for k, v in request.env.items()})
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        process = subprocess.Popen(
            [a.replace(WORKDIR, tmp) for a in request.argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp,
            env=env,
            start_new_session=True,  # its own process group: the timeout kills all of it
            preexec_fn=lambda: _rlimits(limits),  # noqa: PLW1509 - rlimits must precede exec
        )
        if process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(request.stdin)
            process.stdin.close()

        def kill_group() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

        raw = pump(
            process,
            started=started,
            timeout_s=limits.timeout_s,
            max_output_bytes=limits.max_output_bytes,
            captured_bytes=limits.captured_output_bytes,
            kill=kill_group,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    code = raw.returncode if raw.returncode >= 0 else 128 - raw.returncode
    return finish(
        raw, {"exit-code": code}, cpu, after.ru_maxrss * 1024, oom_killed=False, pids_limited=False
    )
