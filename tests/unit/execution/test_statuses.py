"""The status decision, from facts the sandbox measured."""

from __future__ import annotations

import signal

import pytest
from codejury.execution.sandbox import Limits, SandboxOutcome
from codejury.execution.statuses import classify_compile, classify_run
from codejury.proto.v1 import domain_pb2

LIMITS = Limits(timeout_s=2, memory_bytes=256 << 20, max_processes=16)


def outcome(**changes: object) -> SandboxOutcome:
    base: dict[str, object] = {
        "exit_code": 0,
        "signal": None,
        "timed_out": False,
        "oom_killed": False,
        "output_limited": False,
        "pids_limited": False,
        "wall_time_s": 0.1,
        "cpu_time_s": 0.05,
        "memory_peak_bytes": 1 << 20,
        "stdout": b"",
        "stderr": b"",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "sandbox_error": None,
    }
    base.update(changes)
    return SandboxOutcome(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        ({}, domain_pb2.PASSED),
        ({"exit_code": 1}, domain_pb2.FAILED),
        ({"exit_code": None, "signal": signal.SIGSEGV}, domain_pb2.RUNTIME_ERROR),
        ({"exit_code": None, "signal": signal.SIGABRT}, domain_pb2.RUNTIME_ERROR),
        ({"exit_code": None, "signal": signal.SIGKILL, "timed_out": True}, domain_pb2.TIMEOUT),
        ({"exit_code": None, "signal": signal.SIGXCPU}, domain_pb2.TIMEOUT),
        ({"exit_code": None, "signal": signal.SIGKILL, "cpu_time_s": 2.0}, domain_pb2.TIMEOUT),
        (
            {"exit_code": None, "signal": signal.SIGKILL, "oom_killed": True},
            domain_pb2.MEMORY_LIMIT,
        ),
        (
            {"exit_code": None, "signal": signal.SIGKILL, "output_limited": True},
            domain_pb2.OUTPUT_LIMIT,
        ),
        ({"exit_code": None, "signal": signal.SIGXFSZ}, domain_pb2.OUTPUT_LIMIT),
        ({"exit_code": 1, "pids_limited": True}, domain_pb2.RUNTIME_ERROR),
        ({"exit_code": None, "sandbox_error": "bwrap: no"}, domain_pb2.SANDBOX_ERROR),
        # Our failure wins over everything the program might have done.
        ({"exit_code": None, "timed_out": True, "sandbox_error": "x"}, domain_pb2.SANDBOX_ERROR),
        # A timeout explains a kill better than the memory it had reached.
        ({"exit_code": None, "timed_out": True, "oom_killed": True}, domain_pb2.TIMEOUT),
    ],
)
def test_classify_run(facts: dict[str, object], status: int) -> None:
    assert classify_run(outcome(**facts), LIMITS).status == status


def test_details_name_the_limit() -> None:
    verdict = classify_run(outcome(exit_code=None, oom_killed=True, signal=9), LIMITS)
    assert "256 MiB" in verdict.detail
    verdict = classify_run(outcome(exit_code=None, signal=signal.SIGSEGV), LIMITS)
    assert verdict.detail == "killed by SIGSEGV"


def test_a_passing_program_is_not_blamed_for_hitting_the_process_limit() -> None:
    assert classify_run(outcome(pids_limited=True), LIMITS).status == domain_pb2.PASSED


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        ({}, None),
        ({"exit_code": 1}, domain_pb2.COMPILE_ERROR),
        ({"exit_code": None, "timed_out": True}, domain_pb2.COMPILE_ERROR),
        ({"exit_code": None, "signal": 9, "oom_killed": True}, domain_pb2.COMPILE_ERROR),
        ({"sandbox_error": "bwrap failed"}, domain_pb2.SANDBOX_ERROR),
    ],
)
def test_classify_compile(facts: dict[str, object], status: int | None) -> None:
    verdict = classify_compile(outcome(**facts), LIMITS)
    assert (verdict.status if verdict else None) == status
