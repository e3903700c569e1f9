"""The sandbox launcher (``launcher.c``): built once, in two roles.

``drop_argv`` puts it in front of bubblewrap on the host (join the run's cgroup, drop to
the sandbox user, exec bubblewrap); inside the sandbox it is fed one message per run,
carrying the run's files, argv, environment and rlimits (see launcher.c for the format).
Building needs a C compiler (gcc comes with the g++ toolchain). It is built without libc
where the architecture allows (x86-64, arm64): glibc's start-up costs ~0.5 ms per exec in
a virtual machine, and a run execs it twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from codejury.execution.errors import SandboxUnavailableError

SOURCE = Path(__file__).with_name("launcher.c")
IN_SANDBOX = "/.codejury-launch"
MAGIC = b"CJL1"
# No libc, no start files; -fno-tree-loop-distribute-patterns keeps gcc from turning the
# memcpy loop into a call to memcpy (itself).
FREESTANDING = (
    "-O2",
    "-static",
    "-nostdlib",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-tree-loop-distribute-patterns",
    "-fno-stack-protector",
    "-fno-pie",
    "-no-pie",
    "-fno-asynchronous-unwind-tables",
)
LIBC = ("-O2", "-DCJL_LIBC")  # any other architecture or compiler


def build(cache_dir: Path) -> Path:
    """The launcher binary for the current source, compiled on first use."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + repr((FREESTANDING, LIBC)).encode()).hexdigest()[:16]
    target = cache_dir / "launcher" / digest / "codejury-launch"
    if target.exists():
        return target
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SandboxUnavailableError(
            "no C compiler to build the sandbox launcher: `apt-get install gcc` "
            "(bin/setup installs it with g++), or pass --unsafe-no-sandbox"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.parent.chmod(0o755)
    partial = target.with_name(f".{uuid.uuid4().hex}")
    errors = []
    for flags in (FREESTANDING, LIBC):
        done = subprocess.run(
            [compiler, *flags, "-o", str(partial), str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode == 0 and _answers_usage(partial):
            break
        errors.append(done.stderr[-300:] or "the built launcher did not run")
    else:
        partial.unlink(missing_ok=True)
        raise SandboxUnavailableError(f"building the sandbox launcher failed: {' | '.join(errors)}")
    partial.chmod(0o755)
    os.replace(partial, target)  # atomic: concurrent builders agree on the result
    return target


def _answers_usage(binary: Path) -> bool:
    """The freestanding start-up (its own _start and syscalls) works on this machine:
    called with no arguments, the launcher says how to call it and exits 127."""
    try:
        done = subprocess.run([str(binary)], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 127 and b"usage: codejury-launch" in done.stderr


def drop_argv(
    binary: Path, *, uid: int, gid: int, procs_files: Sequence[str], argv: Sequence[str]
) -> list[str]:
    """Run ``argv`` as ``uid``/``gid`` inside the cgroup of ``procs_files`` (from root)."""
    return [str(binary), "drop", str(uid), str(gid), *procs_files, "--", *argv]


def _blob(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def encode(
    *,
    files: Mapping[str, bytes],
    argv: Sequence[str],
    env: Mapping[str, str],
    cpu_soft_s: int,
    cpu_hard_s: int,
    max_file_bytes: int,
) -> bytes:
    parts = [MAGIC, struct.pack("<I", len(files))]
    for name, data in files.items():
        parts += [_blob(name.encode()), _blob(data)]
    parts.append(struct.pack("<I", len(argv)))
    parts += [_blob(a.encode()) for a in argv]
    parts.append(struct.pack("<I", len(env)))
    parts += [_blob(f"{k}={v}".encode()) for k, v in env.items()]
    parts.append(struct.pack("<QQQ", cpu_soft_s, cpu_hard_s, max_file_bytes))
    return b"".join(parts)
