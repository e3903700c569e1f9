"""Solve requests in and responses out: validation (pure) and the reply built from the
completion event."""

from __future__ import annotations

from dataclasses import dataclass

from codejury.core.settings import Settings
from codejury.execution.errors import UnknownLanguageError
from codejury.execution.languages import get_language
from codejury.pipeline.errors import InvalidSolveRequestError
from codejury.proto.v1 import domain_pb2, events_pb2, services_pb2


@dataclass(frozen=True)
class SolveLimits:
    max_n: int
    max_prompt_chars: int
    default_deadline_s: float
    max_deadline_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SolveLimits:
        return cls(
            max_n=settings.generation.max_n,
            max_prompt_chars=settings.execution.max_program_kb << 10,
            default_deadline_s=settings.pipeline.default_deadline_s,
            max_deadline_s=settings.pipeline.max_deadline_s,
        )


def check_solve_request(request: services_pb2.SolveRequest, limits: SolveLimits) -> None:
    """Raise InvalidSolveRequestError naming the first wrong field."""
    if not request.HasField("problem"):
        raise InvalidSolveRequestError("problem: missing; give the prompt and its language")
    problem = request.problem
    if not problem.prompt.strip():
        raise InvalidSolveRequestError("problem.prompt: empty; give the code to complete")
    if len(problem.prompt) > limits.max_prompt_chars:
        raise InvalidSolveRequestError(
            f"problem.prompt: {len(problem.prompt)} characters, more than the "
            f"{limits.max_prompt_chars} allowed"
        )
    if not problem.language:
        raise InvalidSolveRequestError("problem.language: empty; name a language, e.g. python")
    try:
        get_language(problem.language)
    except UnknownLanguageError as exc:
        raise InvalidSolveRequestError(f"problem.language: {exc}") from exc
    if not 1 <= request.n <= limits.max_n:
        raise InvalidSolveRequestError(
            f"n: {request.n} is out of range; ask for 1 to {limits.max_n} candidates"
        )
    if request.selection not in domain_pb2.Selection.values():
        raise InvalidSolveRequestError(
            f"selection: {request.selection} is not a Selection; give "
            + ", ".join(domain_pb2.Selection.keys())
        )
    if request.deadline_s < 0 or request.deadline_s > limits.max_deadline_s:
        raise InvalidSolveRequestError(
            f"deadline_s: {request.deadline_s:g} is out of range; give 0 (the default, "
            f"{limits.default_deadline_s:g}s) up to {limits.max_deadline_s:g}"
        )


def deadline_of(
    request: services_pb2.SolveRequest, limits: SolveLimits, rpc_remaining_s: float | None
) -> float:
    """Seconds to wait: the request's own deadline, else the default, capped by the RPC's."""
    wanted = request.deadline_s or limits.default_deadline_s
    return wanted if rpc_remaining_s is None else max(0.0, min(wanted, rpc_remaining_s))


def response_of(completed: events_pb2.SolveCompleted) -> services_pb2.SolveResponse:
    """The Solve reply for a completion without an error."""
    response = services_pb2.SolveResponse(
        request_id=completed.request_id,
        candidates=completed.candidates,
        results=completed.results,
        scores=completed.scores,
        reranker_version=completed.reranker_version,
        selection=completed.selection,
    )
    if 0 <= completed.chosen_index < len(completed.candidates):
        response.chosen.CopyFrom(completed.candidates[completed.chosen_index])
    return response
