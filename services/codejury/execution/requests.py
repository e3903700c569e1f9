"""Validation of execution requests (pure): every rejection names the field and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from codejury.execution.assembly import assemble
from codejury.execution.errors import InvalidRequestError, LanguageUnavailableError
from codejury.execution.languages import Language, get_language
from codejury.execution.sandbox import Limits
from codejury.proto.v1 import domain_pb2, services_pb2


def check_language(problem: domain_pb2.Problem) -> Language:
    if not problem.language:
        raise InvalidRequestError("problem.language is empty: set it, e.g. 'python'")
    language = get_language(problem.language)  # UnknownLanguageError names the choices
    ok, why = language.available()
    if not ok:
        raise LanguageUnavailableError(
            f"problem.language {language.name!r} is not available: {why}"
        )
    return language


def limits_from_proto(
    limits: services_pb2.ExecutionLimits, defaults: Limits, ceilings: Limits
) -> Limits:
    """Request limits over the defaults; unset (zero) fields keep the default, and none
    may exceed the server's ceiling (``execution.ceiling_*``)."""
    fields = ("timeout_s", "memory_bytes", "max_processes", "max_output_bytes")
    for name in fields:
        value = getattr(limits, name)
        if value < 0:
            raise InvalidRequestError(f"limits.{name} must be >= 0 (0 = default), got {value}")
        ceiling = getattr(ceilings, name)
        if value > ceiling:
            raise InvalidRequestError(
                f"limits.{name} must be <= {ceiling:g} (this server's ceiling), got {value:g}"
            )
    if limits.memory_bytes and limits.memory_bytes < (16 << 20):
        raise InvalidRequestError(
            f"limits.memory_bytes must be >= 16 MiB, got {limits.memory_bytes}"
        )
    return replace(
        defaults,
        timeout_s=limits.timeout_s or defaults.timeout_s,
        memory_bytes=limits.memory_bytes or defaults.memory_bytes,
        max_processes=limits.max_processes or defaults.max_processes,
        max_output_bytes=limits.max_output_bytes or defaults.max_output_bytes,
    )


def check_candidates(
    problem: domain_pb2.Problem,
    candidates: Sequence[domain_pb2.Candidate],
    *,
    max_batch: int,
    max_program_bytes: int,
    field: str = "candidates",
) -> None:
    if not candidates:
        raise InvalidRequestError(f"{field} is empty: send at least one candidate")
    if len(candidates) > max_batch:
        raise InvalidRequestError(
            f"{field} has {len(candidates)} entries, over the limit of {max_batch}: split the batch"
        )
    for i, candidate in enumerate(candidates):
        where = f"{field}[{i}]" if field == "candidates" else field
        program = assemble(problem, candidate.completion)
        if not program.strip():
            raise InvalidRequestError(
                f"{where}: the program (prompt + completion + tests) is empty: nothing to run"
            )
        size = len(program.encode())
        if size > max_program_bytes:
            raise InvalidRequestError(
                f"{where}: the program is {size} bytes, over the limit of {max_program_bytes}"
            )
