"""The Kafka stage: ``codejury.candidates.generated`` -> ``codejury.candidates.executed``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from codejury.bus.envelope import Event, Outgoing
from codejury.bus.producer import MAX_RECORD_BYTES
from codejury.bus.topics import CANDIDATES_EXECUTED
from codejury.core.errors import PermanentError
from codejury.execution.backends import ExecutionBackend
from codejury.execution.requests import check_candidates, check_language
from codejury.execution.sandbox import Limits
from codejury.proto.v1 import events_pb2

#: What a CandidatesExecuted may take of a Kafka record: the rest is for its envelope and
#: for what the reranking stage adds to it (a score per candidate) in SolveCompleted.
EVENT_BUDGET_BYTES = MAX_RECORD_BYTES - (64 << 10)


class UnexpectedEventError(PermanentError):
    """The topic carried an event of the wrong type."""


def make_handler(
    backend: ExecutionBackend, limits: Limits, *, max_batch: int, max_program_bytes: int
) -> Callable[[Event], Iterable[Outgoing]]:
    """Executes a request's candidates when its problem has tests; passes it on otherwise.

    Invalid requests raise a PermanentError (-> dead-letter topic); workers that do not
    answer raise a TemporaryError (-> retried with backoff).
    """

    def handle(event: Event) -> Iterable[Outgoing]:
        generated = event.payload
        if not isinstance(generated, events_pb2.CandidatesGenerated):
            raise UnexpectedEventError(
                f"expected CandidatesGenerated, got {generated.DESCRIPTOR.full_name}"
            )
        executed = events_pb2.CandidatesExecuted(
            request_id=generated.request_id,
            problem=generated.problem,
            candidates=generated.candidates,
            selection=generated.selection,
        )
        if generated.problem.tests.strip() and generated.candidates:
            check_language(generated.problem)
            check_candidates(
                generated.problem,
                generated.candidates,
                max_batch=max_batch,
                max_program_bytes=max_program_bytes,
            )
            executed.results.extend(
                backend.execute_batch(generated.problem, generated.candidates, limits)
            )
            fit_outputs(executed, EVENT_BUDGET_BYTES)
        return [Outgoing(CANDIDATES_EXECUTED, executed, key=generated.request_id)]

    return handle


def fit_outputs(executed: events_pb2.CandidatesExecuted, budget_bytes: int) -> None:
    """Trim the results' stdout and stderr until the event fits ``budget_bytes``: every
    stream keeps its head (where a failure first shows) up to one shared cap, streams
    shorter than the cap keep all of theirs, and a trimmed stream is marked truncated.
    32 candidates whose tests print 60 KB each came to 1.9 MB, over Kafka's 1 MiB record:
    the request failed; now it is answered with shorter outputs. When even empty outputs
    would not fit (a huge problem), nothing is trimmed: the producer's check refuses it
    with the reason."""
    if executed.ByteSize() <= budget_bytes:
        return
    streams = [(r, name) for r in executed.results for name in ("stdout", "stderr")]
    sizes = [len(getattr(r, name).encode()) for r, name in streams]
    # what trimming adds: a stream's truncated flag (2 bytes), a length's varint change
    overhead = 8 * len(streams)
    available = budget_bytes - (executed.ByteSize() - sum(sizes)) - overhead
    if available <= 0:
        return
    cap = _fair_cap(sizes, available)
    for (result, name), size in zip(streams, sizes, strict=True):
        if size > cap:
            text = getattr(result, name).encode()[:cap].decode(errors="ignore")
            setattr(result, name, text)
            setattr(result, f"{name}_truncated", True)


def _fair_cap(sizes: list[int], available: int) -> int:
    """The largest cap such that sum(min(size, cap)) fits ``available`` (water-filling):
    what short streams do not use, the long ones share."""
    remaining, left = available, len(sizes)
    for size in sorted(sizes):
        share = remaining // left
        if size > share:
            return share
        remaining -= size
        left -= 1
    return max(sizes, default=0)
