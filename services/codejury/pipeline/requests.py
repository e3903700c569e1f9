"""Solve requests in and responses out: validation (pure) and the reply built from the
completion event.

Sizes are checked here, before anything is published: the caller's problem travels in
every event of its request, each one Kafka record, so a problem that could not fit beside
its candidates and their results is refused now with its largest field named, instead of
failing in the producer or a stage downstream. Sizes are UTF-8 bytes, as Kafka counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from codejury.core.settings import Settings
from codejury.execution.errors import UnknownLanguageError
from codejury.execution.languages import get_language
from codejury.execution.stage import EVENT_BUDGET_BYTES
from codejury.pipeline.errors import InvalidSolveRequestError
from codejury.proto.v1 import domain_pb2, events_pb2, services_pb2

#: Ids and stop sequences are short in every benchmark (ids under 50 characters, at most
#: 5 stop sequences of at most 12 bytes): these bounds are generous and keep them short.
MAX_ID_CHARS = 128
MAX_STOP_SEQUENCES = 16
MAX_STOP_SEQUENCE_BYTES = 256
#: What the request's largest event (CandidatesExecuted, then SolveCompleted) holds besides
#: its problem and completions: per request its id, the reranker version and the choice;
#: per candidate its ids (the request's id in each), model name and revision, sampling,
#: result and score. Measured about 260 and 990 bytes with ids of MAX_ID_CHARS
#: (tests/unit/pipeline/test_pipe_requests.py); kept wide, never under.
REQUEST_OVERHEAD_BYTES = 512
CANDIDATE_OVERHEAD_BYTES = 1536
#: A completion's bytes per new token, as estimated here: code averages 3 to 4 bytes a
#: token. A completion longer than the estimate still fails, later: the generation stage
#: dead-letters its event once with the reason, and the caller hears it.
BYTES_PER_TOKEN = 4


def problem_room(n: int, max_new_tokens: int) -> int:
    """Bytes the problem may take so that the request's largest event still fits its
    Kafka record with ``n`` candidates of ``max_new_tokens`` tokens (their results' outputs
    are trimmed into what is left: ``execution.stage.fit_outputs``)."""
    per_candidate = CANDIDATE_OVERHEAD_BYTES + max_new_tokens * BYTES_PER_TOKEN
    return EVENT_BUDGET_BYTES - REQUEST_OVERHEAD_BYTES - n * per_candidate


@dataclass(frozen=True)
class SolveLimits:
    max_n: int
    max_prompt_bytes: int
    default_deadline_s: float
    max_deadline_s: float
    max_program_bytes: int  # declaration + prompt + completion + tests, as the sandbox runs
    max_new_tokens: int  # what a request that sets none gets
    max_new_tokens_limit: int
    prompt_setting: str = "reranking.max_prompt_kb"  # where max_prompt_bytes comes from

    @classmethod
    def from_settings(cls, settings: Settings) -> SolveLimits:
        # The prompt goes to the reranker (which refuses one above its limit) and into the
        # program the sandbox runs: the lower of the two limits is the one a request meets.
        prompt_limits = {
            "reranking.max_prompt_kb": settings.reranking.max_prompt_kb,
            "execution.max_program_kb": settings.execution.max_program_kb,
        }
        prompt_setting = min(prompt_limits, key=prompt_limits.__getitem__)
        gen = settings.generation
        return cls(
            max_n=gen.max_n,
            max_prompt_bytes=prompt_limits[prompt_setting] << 10,
            default_deadline_s=settings.pipeline.default_deadline_s,
            max_deadline_s=settings.pipeline.max_deadline_s,
            max_program_bytes=settings.execution.max_program_kb << 10,
            max_new_tokens=min(gen.max_new_tokens, gen.max_new_tokens_limit),
            max_new_tokens_limit=gen.max_new_tokens_limit,
            prompt_setting=prompt_setting,
        )


def check_solve_request(request: services_pb2.SolveRequest, limits: SolveLimits) -> None:
    """Raise InvalidSolveRequestError naming the first wrong field."""
    if len(request.request_id) > MAX_ID_CHARS:
        raise InvalidSolveRequestError(
            f"request_id: {len(request.request_id)} characters, over the limit of "
            f"{MAX_ID_CHARS}: use a shorter id (or none: the server assigns one)"
        )
    if not request.HasField("problem"):
        raise InvalidSolveRequestError("problem: missing; give the prompt and its language")
    problem = request.problem
    if not problem.prompt.strip():
        raise InvalidSolveRequestError("problem.prompt: empty; give the code to complete")
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
    if not 0 <= request.sampling.max_new_tokens <= limits.max_new_tokens_limit:
        raise InvalidSolveRequestError(
            f"sampling.max_new_tokens: {request.sampling.max_new_tokens} is out of range; "
            f"give 0 (the default, {limits.max_new_tokens}) up to "
            f"{limits.max_new_tokens_limit} (generation.max_new_tokens_limit)"
        )
    _check_sizes(request, limits)
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


def _check_sizes(request: services_pb2.SolveRequest, limits: SolveLimits) -> None:
    """Short fields within their bounds, the prompt within its limit, then the problem
    within what its Kafka records leave it beside the candidates, then the program it
    makes within the sandbox's limit."""
    problem = request.problem
    if len(problem.problem_id) > MAX_ID_CHARS:
        raise InvalidSolveRequestError(
            f"problem.problem_id: {len(problem.problem_id)} characters, over the limit of "
            f"{MAX_ID_CHARS}: use a shorter id"
        )
    if len(problem.stop_sequences) > MAX_STOP_SEQUENCES:
        raise InvalidSolveRequestError(
            f"problem.stop_sequences: {len(problem.stop_sequences)} of them, over the limit "
            f"of {MAX_STOP_SEQUENCES}: keep the ones that end a function"
        )
    for i, stop in enumerate(problem.stop_sequences):
        if len(stop.encode()) > MAX_STOP_SEQUENCE_BYTES:
            raise InvalidSolveRequestError(
                f"problem.stop_sequences[{i}]: {len(stop.encode()):,} bytes, over the limit "
                f"of {MAX_STOP_SEQUENCE_BYTES}: a stop sequence is a short marker, e.g. "
                + repr("\ndef ")
            )
    sizes = {
        f"problem.{name}": len(getattr(problem, name).encode())
        for name in ("tests", "prompt", "declaration", "entry_point", "dataset")
    }
    if sizes["problem.prompt"] > limits.max_prompt_bytes:
        raise InvalidSolveRequestError(
            f"problem.prompt: {sizes['problem.prompt']:,} bytes, over the limit of "
            f"{limits.max_prompt_bytes:,} ({limits.prompt_setting}): shorten it"
        )
    # The problem travels in every event of the request (SolveRequested,
    # CandidatesGenerated, CandidatesExecuted, SolveCompleted), each one Kafka record.
    max_new_tokens = request.sampling.max_new_tokens or limits.max_new_tokens
    room = problem_room(request.n, max_new_tokens)
    size = problem.ByteSize()
    if size > room:
        largest = max(sizes, key=sizes.__getitem__)
        raise InvalidSolveRequestError(
            f"{largest}: {sizes[largest]:,} bytes make the problem {size:,}, over the "
            f"{max(room, 0):,} that a Kafka record leaves it beside n={request.n} candidates "
            f"of up to {max_new_tokens} new tokens and their results: shorten {largest}, or "
            "ask for fewer candidates (n) or new tokens (sampling.max_new_tokens)"
        )
    if problem.tests.strip():  # without tests nothing runs
        program = sizes["problem.declaration"] + sizes["problem.prompt"] + sizes["problem.tests"]
        if program > limits.max_program_bytes:
            raise InvalidSolveRequestError(
                f"problem.tests: {sizes['problem.tests']:,} bytes make the program (declaration, "
                f"prompt, completion and tests) at least {program:,}, over the "
                f"{limits.max_program_bytes:,} it may take (execution.max_program_kb): "
                "shorten the tests or the prompt"
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
