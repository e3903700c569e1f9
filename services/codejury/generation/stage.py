"""The Kafka stage: ``codejury.solve.requested`` -> ``codejury.candidates.generated``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from codejury.bus.envelope import Event, Outgoing
from codejury.bus.topics import CANDIDATES_GENERATED
from codejury.generation.errors import UnexpectedEventError
from codejury.generation.generator import Generator
from codejury.proto.v1 import events_pb2


def request_seed(request_id: str) -> int:
    """The seed of a request that did not set one: derived from its id, so a redelivered
    request samples the same candidates."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") >> 1 or 1


def make_handler(generator: Generator) -> Callable[[Event], Iterable[Outgoing]]:
    """Generates the request's candidates and publishes them keyed by request id.

    Invalid requests raise a PermanentError (-> dead-letter topic); a model server that
    does not answer raises a TemporaryError (-> retried with backoff).
    """

    def handle(event: Event) -> Iterable[Outgoing]:
        requested = event.payload
        if not isinstance(requested, events_pb2.SolveRequested):
            raise UnexpectedEventError(
                f"expected SolveRequested, got {requested.DESCRIPTOR.full_name}"
            )
        key = requested.request_id or event.event_id
        candidates = generator.generate(
            [requested.problem],
            requested.n,
            requested.sampling,
            request_key=key,
            seed_if_unset=request_seed(key),
        )
        generated = events_pb2.CandidatesGenerated(
            request_id=requested.request_id,
            problem=requested.problem,
            candidates=candidates,
            selection=requested.selection,
        )
        return [Outgoing(CANDIDATES_GENERATED, generated, key=key)]

    return handle
