"""Hostile programs are contained, get the right status, and leave nothing behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from codejury.execution.errors import SandboxUnavailableError
from codejury.execution.executor import Executor
from codejury.execution.sandbox import Limits, Sandbox, SandboxConfig, SandboxRequest
from codejury.proto.v1 import domain_pb2

from tests.integration.execution.conftest import leftover_runs

STATUS = domain_pb2.ExecutionStatus.Name


def _processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if marker in line and "ps -eo" not in line]


def run_python(executor: Executor, code: str, **limits: object) -> domain_pb2.ExecutionResult:
    return executor.run_program("python", code, Limits(**{"timeout_s": 5, **limits}))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _nothing_left_behind(request: pytest.FixtureRequest, cgroup_parent: str) -> Iterator[None]:
    yield
    # A run's processes are all killed before its outcome returns; its group is removed
    # by the sandbox's reaper right after, which settle() waits for.
    boxes = [
        request.getfixturevalue(n) for n in ("sandbox", "warm_sandbox") if n in request.fixturenames
    ]
    if "executor" in request.fixturenames:
        boxes.append(request.getfixturevalue("executor").sandbox)
    for box in boxes:
        assert box.settle(timeout_s=10)
    # Only the warm pool's waiting sandboxes (two) may hold a group between runs.
    assert leftover_runs(cgroup_parent, allow=2) == []


def test_a_passing_program_passes_and_reports_its_usage(executor: Executor) -> None:
    result = run_python(executor, "print('hello')")
    assert STATUS(result.status) == "PASSED"
    assert result.stdout == "hello\n"
    assert result.wall_time_ms > 0 and result.cpu_time_ms > 0 and result.max_memory_bytes > 0


def test_fork_bomb_is_capped_by_the_process_limit(executor: Executor) -> None:
    marker = uuid.uuid4().hex
    code = f"import os\n# {marker}\nwhile True:\n    os.fork()\n"
    result = run_python(executor, code, max_processes=32, timeout_s=3)
    assert STATUS(result.status) in {"RUNTIME_ERROR", "TIMEOUT"}
    assert _processes_with(marker) == []


def test_infinite_loop_in_a_setsid_child_is_killed_with_the_run(executor: Executor) -> None:
    marker = uuid.uuid4().hex
    code = (
        "import subprocess, time\n"
        f"subprocess.Popen(['setsid', 'sh', '-c', 'while :; do :; done # {marker}'])\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = run_python(executor, code, timeout_s=1)
    assert STATUS(result.status) == "TIMEOUT"
    assert time.monotonic() - started < 10
    assert _processes_with(marker) == []


def _killed_or_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists, is exiting, or has SIGKILL pending: it will
    never run user code again."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    if fields.get("State", "").startswith(("Z", "X")):
        return True
    pending = int(fields.get("ShdPnd", "0"), 16) | int(fields.get("SigPnd", "0"), 16)
    return bool(pending & (1 << (signal.SIGKILL - 1)))


def test_a_child_that_outlives_a_finished_program_is_killed_before_the_outcome_returns(
    sandbox: Sandbox,
) -> None:
    marker = uuid.uuid4().hex
    outcome = sandbox.run(
        SandboxRequest(
            argv=["/usr/bin/sh", "-c", f"setsid sh -c 'while :; do :; done # {marker}' & exit 0"],
            limits=Limits(timeout_s=10),
        )
    )
    assert outcome.exit_code == 0 and not outcome.timed_out
    survivors = [int(line.split()[0]) for line in _processes_with(marker)]
    assert all(_killed_or_gone(pid) for pid in survivors), survivors
    assert sandbox.settle(timeout_s=10)
    assert _processes_with(marker) == []


def test_ten_gigabytes_hit_the_memory_limit(executor: Executor) -> None:
    result = run_python(
        executor, "b = bytearray(10 * 2**30)\nprint(len(b))", memory_bytes=256 << 20
    )
    assert STATUS(result.status) == "MEMORY_LIMIT"
    assert "256 MiB" in result.detail


def test_disk_fill_is_stopped_and_lands_nowhere_on_the_host(
    executor: Executor, tmp_path: Path
) -> None:
    code = (
        "import os\n"
        "for i in range(10_000):\n"
        "    with open(f'/tmp/fill{i}', 'wb') as f:\n"
        "        f.write(b'x' * (8 << 20))\n"
        "print('filled')\n"
    )
    result = run_python(executor, code, memory_bytes=512 << 20, timeout_s=20)
    assert STATUS(result.status) in {"FAILED", "MEMORY_LIMIT", "OUTPUT_LIMIT"}
    assert "filled" not in result.stdout
    assert not list(Path("/tmp").glob("fill*"))


def test_a_single_file_is_capped_by_rlimit_fsize(sandbox: Sandbox) -> None:
    outcome = sandbox.run(
        SandboxRequest(
            argv=["/usr/bin/dd", "if=/dev/zero", "of=/sandbox/big", "bs=1M", "count=64"],
            limits=Limits(max_file_bytes=8 << 20, timeout_s=10),
        )
    )
    assert outcome.signal == signal.SIGXFSZ


def test_no_network_not_even_the_hosts_loopback(executor: Executor) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[object] = []
    listener.settimeout(3)

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(listener.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    code = (
        "import socket\n"
        f"socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "print('connected')\n"
    )
    result = run_python(executor, code)
    thread.join()
    listener.close()
    assert STATUS(result.status) == "FAILED"
    assert "ConnectionRefusedError" in result.stderr
    assert accepted == []
    # And only a loopback interface exists, with no routes out.
    ifaces = run_python(
        executor, "import socket; print(sorted(n for _, n in socket.if_nameindex()))"
    )
    assert ifaces.stdout.strip() == "['lo']"


def test_etc_shadow_is_unreadable(executor: Executor) -> None:
    result = run_python(executor, "print(open('/etc/shadow').read())")
    assert STATUS(result.status) == "FAILED"
    assert "PermissionError" in result.stderr
    uid = run_python(executor, "import os; print(os.getuid(), os.geteuid())")
    assert uid.stdout.split() != ["0", "0"]


def test_writes_outside_the_work_dir_fail_and_private_dirs_are_hidden(executor: Executor) -> None:
    code = (
        "import os\n"
        "for path in ['/usr/x', '/etc/x', '/x']:\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "        print('WROTE', path)\n"
        "    except OSError as exc:\n"
        "        print('denied', path, type(exc).__name__)\n"
        "hidden = ['/home', '/root', '/run', '/work', '/sys']\n"
        "print(sorted(p for p in hidden if os.path.exists(p)))\n"
        "open('inside.txt', 'w').write('ok')\n"
    )
    result = run_python(executor, code)
    assert STATUS(result.status) == "PASSED", result.stderr
    assert "WROTE" not in result.stdout
    assert result.stdout.count("denied") == 3
    assert result.stdout.strip().endswith("[]")
    assert not Path(os.getcwd(), "inside.txt").exists()


def test_killing_the_parent_and_everything_else_does_not_hurt_the_host(executor: Executor) -> None:
    code = (
        "import os, signal\n"
        "os.kill(os.getppid(), signal.SIGKILL)\n"
        "os.kill(-1, signal.SIGKILL)\n"
        "print('survived')\n"
    )
    result = run_python(executor, code)
    assert STATUS(result.status) in {"RUNTIME_ERROR", "PASSED", "FAILED"}
    assert STATUS(result.status) != "SANDBOX_ERROR"
    again = run_python(executor, "print('still working')")
    assert again.stdout == "still working\n"


def test_output_flood_is_cut_and_marked(executor: Executor) -> None:
    result = run_python(
        executor, "import sys\nwhile True: sys.stdout.write('x' * 65536)", max_output_bytes=1 << 20
    )
    assert STATUS(result.status) == "OUTPUT_LIMIT"
    assert result.stdout_truncated and 0 < len(result.stdout) <= 64 << 10


def test_long_but_allowed_output_is_truncated_without_failing(executor: Executor) -> None:
    result = run_python(
        executor, "print('y' * 200_000)", max_output_bytes=1 << 20, captured_output_bytes=1000
    )
    assert STATUS(result.status) == "PASSED"
    assert result.stdout_truncated and len(result.stdout) == 1000


def test_runtime_error_from_a_signal(executor: Executor) -> None:
    result = run_python(executor, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert STATUS(result.status) == "RUNTIME_ERROR" and "SIGSEGV" in result.detail


def test_missing_bubblewrap_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    box = Sandbox(SandboxConfig())
    with pytest.raises(
        SandboxUnavailableError, match=r"apt-get install bubblewrap.*--unsafe-no-sandbox"
    ):
        box.check()


def test_unsafe_mode_runs_without_isolation_and_warns_every_time(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from codejury.execution.executor import ExecutorConfig

    unsafe = Executor(
        Sandbox(SandboxConfig(unsafe_no_sandbox=True)), ExecutorConfig(cache_dir=tmp_path)
    )
    for _ in range(2):
        result = unsafe.run_program("python", "import os; print(os.getuid())", Limits(timeout_s=5))
        assert STATUS(result.status) == "PASSED"
    assert result.stdout.strip() == str(os.getuid())  # no privilege drop: that is the point
    timed = unsafe.run_program("python", "while True: pass", Limits(timeout_s=1))
    assert STATUS(timed.status) == "TIMEOUT"


def test_warm_pool_hands_out_fresh_sandboxes_and_closes_clean(
    warm_sandbox: Sandbox, cgroup_parent: str
) -> None:
    marker = uuid.uuid4().hex
    write = SandboxRequest(
        argv=["/usr/bin/sh", "-c", f"ls /sandbox /tmp; echo {marker} > /tmp/left; echo > left"]
    )
    first = warm_sandbox.run(write)
    second = warm_sandbox.run(write)
    # Each run starts with an empty work dir and /tmp: nothing carries over.
    assert first.stdout == second.stdout == b"/sandbox:\n\n/tmp:\n"
    box = Sandbox(SandboxConfig(cgroup_parent=cgroup_parent, warm_pool=1))
    box.check()
    assert box.run(SandboxRequest(argv=["/usr/bin/true"])).exit_code == 0
    box.close()
    assert _processes_with(marker) == []


def test_a_program_that_cannot_start_is_our_error_not_a_label(sandbox: Sandbox) -> None:
    outcome = sandbox.run(SandboxRequest(argv=["/usr/bin/no-such-interpreter", "main.x"]))
    assert outcome.sandbox_error is not None
    assert "no-such-interpreter" in outcome.sandbox_error


# Issue 16, tried as an attacker would: inside the sandbox a candidate could create a
# nested user namespace and be uid 0 in it (`unshare -rm`, then mount a tmpfs over its own
# /etc), and could ptrace the sandbox's own pid 1 (which stopped it: TIMEOUT, not FAILED).
_LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"


def _refused(executor: Executor, call: str) -> str:
    """Runs ``call`` (a libc call returning -1 on failure) and prints the errno's name."""
    code = (
        _LIBC
        + f"result = {call}\n"
        + "import errno\n"
        + "print('allowed' if result != -1 else errno.errorcode[ctypes.get_errno()])\n"
    )
    result = run_python(executor, code)
    assert STATUS(result.status) == "PASSED", result.stderr
    return result.stdout.strip()


def test_a_nested_user_namespace_is_refused(executor: Executor) -> None:
    CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
    assert _refused(executor, f"libc.unshare({CLONE_NEWUSER})") == "EPERM"
    # clone() itself, with the flag: the seccomp filter lets clone through (threads need
    # it), so bubblewrap's --disable-userns is what refuses this one
    pid = _refused(executor, f"libc.syscall(56, {CLONE_NEWUSER | SIGCHLD}, 0, 0, 0, 0)")
    assert pid in ("ENOSPC", "EPERM", "EUSERS"), pid
    result = run_python(
        executor,
        "import subprocess\n"
        "r = subprocess.run(['unshare', '-rm', 'true'], capture_output=True, text=True)\n"
        "print(r.returncode, r.stderr.strip())\n",
    )
    code, _, why = result.stdout.strip().partition(" ")
    assert code != "0" and "unshare failed" in why, result.stdout


def test_ptrace_of_the_sandbox_s_own_processes_is_refused(executor: Executor) -> None:
    PTRACE_ATTACH = 16
    assert _refused(executor, f"libc.ptrace({PTRACE_ATTACH}, 1, 0, 0)") == "EPERM"
    assert _refused(executor, "libc.syscall(310, 1, 0, 0, 0, 0, 0)") == "EPERM"  # vm_readv


@pytest.mark.parametrize(
    ("name", "number"), [("keyctl", 250), ("bpf", 321), ("perf_event_open", 298), ("mount", 165)]
)
def test_kernel_interfaces_a_program_has_no_use_for_are_refused(
    executor: Executor, name: str, number: int
) -> None:
    assert _refused(executor, f"libc.syscall({number}, 0, 0, 0, 0, 0)") == "EPERM", name
