"""From what happened in the sandbox to an ExecutionStatus: a pure decision.

The order matters: our own failure first (never blamed on the program), then the limits
we enforced (timeout, memory, output), then how the program ended (signal, exit code).
Every input is a fact measured by the sandbox (exit code, signal, cgroup events), never
a guess from stderr text.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from codejury.execution.sandbox import Limits, SandboxOutcome
from codejury.proto.v1 import domain_pb2

Status = domain_pb2.ExecutionStatus


@dataclass(frozen=True)
class Verdict:
    status: Status
    detail: str


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify_run(outcome: SandboxOutcome, limits: Limits) -> Verdict:
    """The status of running a program (its compile step, if any, succeeded)."""
    if outcome.sandbox_error:
        return Verdict(domain_pb2.SANDBOX_ERROR, outcome.sandbox_error)
    cpu_limit = limits.cpu_time_s or limits.timeout_s
    if outcome.timed_out:
        return Verdict(domain_pb2.TIMEOUT, f"wall-clock limit of {limits.timeout_s:g}s reached")
    if outcome.signal == signal.SIGXCPU or (
        outcome.signal == signal.SIGKILL and outcome.cpu_time_s >= cpu_limit
    ):
        return Verdict(domain_pb2.TIMEOUT, f"CPU-time limit of {cpu_limit:g}s reached")
    if outcome.oom_killed:
        return Verdict(
            domain_pb2.MEMORY_LIMIT, f"memory limit of {limits.memory_bytes >> 20} MiB reached"
        )
    if outcome.output_limited:
        return Verdict(
            domain_pb2.OUTPUT_LIMIT, f"output exceeded {limits.max_output_bytes >> 10} KiB"
        )
    if outcome.signal == signal.SIGXFSZ:
        return Verdict(
            domain_pb2.OUTPUT_LIMIT, f"a file exceeded {limits.max_file_bytes >> 20} MiB"
        )
    if outcome.signal is not None:
        return Verdict(domain_pb2.RUNTIME_ERROR, f"killed by {_signal_name(outcome.signal)}")
    if outcome.exit_code == 0:
        return Verdict(domain_pb2.PASSED, "")
    if outcome.pids_limited:
        return Verdict(
            domain_pb2.RUNTIME_ERROR,
            f"process limit of {limits.max_processes} reached, then exit {outcome.exit_code}",
        )
    return Verdict(domain_pb2.FAILED, f"exit code {outcome.exit_code}")


def classify_compile(outcome: SandboxOutcome, limits: Limits) -> Verdict | None:
    """None when the compile step succeeded; otherwise the run's final verdict."""
    if outcome.sandbox_error:
        return Verdict(domain_pb2.SANDBOX_ERROR, outcome.sandbox_error)
    if outcome.exit_code == 0 and not (outcome.timed_out or outcome.output_limited):
        return None
    if outcome.timed_out:
        return Verdict(domain_pb2.COMPILE_ERROR, f"compiler exceeded {limits.timeout_s:g}s")
    if outcome.oom_killed:
        return Verdict(
            domain_pb2.COMPILE_ERROR, f"compiler exceeded {limits.memory_bytes >> 20} MiB"
        )
    how = (
        f"killed by {_signal_name(outcome.signal)}"
        if outcome.signal is not None
        else f"exit code {outcome.exit_code}"
    )
    return Verdict(domain_pb2.COMPILE_ERROR, f"compiler failed ({how})")
