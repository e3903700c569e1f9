"""The launcher binary itself (launcher.c), built with the real compiler and run directly:
its message protocol inside the sandbox, and its privilege drop in front of bubblewrap."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from codejury.execution import launcher


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler here (bin/setup installs gcc with g++)")
    return launcher.build(tmp_path_factory.mktemp("launcher"))


def _launch(binary: Path, message: bytes, cwd: Path) -> tuple[int, bytes, bytes]:
    control_r, control_w = os.pipe()
    error_r, error_w = os.pipe()
    process = subprocess.Popen(
        [str(binary), str(control_r), str(error_w)],
        cwd=cwd,
        pass_fds=(control_r, error_w),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(control_r)
    os.close(error_w)
    os.write(control_w, message)
    os.close(control_w)
    out, _ = process.communicate(timeout=30)
    error = os.read(error_r, 4096)
    os.close(error_r)
    return process.returncode, out, error


def test_it_is_built_without_libc_where_it_can_be(binary: Path) -> None:
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip(f"built against libc on {platform.machine()}")
    elf = binary.read_bytes()
    assert elf[:4] == b"\x7fELF"
    assert b"/ld-linux" not in elf and b"libc.so" not in elf  # no interpreter, no libc


def test_the_message_becomes_files_argv_environment_and_rlimits(
    binary: Path, tmp_path: Path
) -> None:
    probe = (
        "import os, resource\n"
        "print(open('deep/dir/data.bin', 'rb').read())\n"
        "print(resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_FSIZE),"
        " resource.getrlimit(resource.RLIMIT_CORE))\n"
        "print(os.environ['FOO'], sorted(os.environ))\n"
    )
    message = launcher.encode(
        files={"deep/dir/data.bin": b"a\x00b", "probe.py": probe.encode()},
        argv=["/usr/bin/python3", "probe.py"],
        env={"FOO": "x=y", "PATH": "/usr/bin", "LANG": "C.UTF-8"},
        cpu_soft_s=7,
        cpu_hard_s=8,
        max_file_bytes=12345,
    )
    code, out, error = _launch(binary, message, tmp_path)
    assert (code, error) == (0, b"")
    assert out.decode().splitlines() == [
        "b'a\\x00b'",
        "(7, 8) (12345, 12345) (0, 0)",
        "x=y ['FOO', 'LANG', 'PATH']",
    ]


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (b"XXXX", b"bad magic"),
        (b"CJL1\x05\x00", b"truncated message"),
        (b"", b"truncated message"),
    ],
    ids=["bad-magic", "truncated", "empty"],
)
def test_a_bad_message_is_reported_on_the_error_fd(
    binary: Path, tmp_path: Path, message: bytes, says: bytes
) -> None:
    code, _, error = _launch(binary, message, tmp_path)
    assert code == 127 and says in error


def test_a_program_that_cannot_start_is_reported_with_its_errno(
    binary: Path, tmp_path: Path
) -> None:
    message = launcher.encode(
        files={}, argv=["/no/such/program"], env={}, cpu_soft_s=1, cpu_hard_s=2, max_file_bytes=1
    )
    code, _, error = _launch(binary, message, tmp_path)
    assert code == 127 and error.startswith(b"codejury-launch: exec /no/such/program (errno 2)")


def test_drop_refuses_root_and_reports_a_cgroup_it_cannot_join(binary: Path) -> None:
    root = subprocess.run(
        launcher.drop_argv(binary, uid=0, gid=0, procs_files=[], argv=["/usr/bin/id"]),
        capture_output=True,
        check=False,
    )
    assert root.returncode == 127 and b"never root" in root.stderr
    missing = subprocess.run(
        launcher.drop_argv(
            binary,
            uid=65534,
            gid=65534,
            procs_files=["/no/such/cgroup.procs"],
            argv=["/usr/bin/id"],
        ),
        capture_output=True,
        check=False,
    )
    assert missing.returncode == 127 and b"open /no/such/cgroup.procs" in missing.stderr


def test_drop_leaves_no_id_group_or_capability_of_root(binary: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    done = subprocess.run(
        launcher.drop_argv(
            binary,
            uid=65534,
            gid=65534,
            procs_files=[],
            argv=[
                "/usr/bin/grep",
                "-E",
                "^(Uid|Gid|Groups|CapPrm|CapEff|CapAmb):",
                "/proc/self/status",
            ],
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    fields = dict(line.split(":", 1) for line in done.stdout.splitlines())
    assert fields["Uid"].split() == ["65534"] * 4
    assert fields["Gid"].split() == ["65534"] * 4
    assert fields["Groups"].strip() == ""
    assert {int(fields[c], 16) for c in ("CapPrm", "CapEff", "CapAmb")} == {0}
