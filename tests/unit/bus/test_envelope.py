from __future__ import annotations

from datetime import UTC, datetime

import pytest
from codejury.bus.envelope import SCHEMA_VERSION, derived_event_id, unwrap, wrap
from codejury.bus.errors import EnvelopeError
from codejury.core.errors import PermanentError
from codejury.proto.v1 import domain_pb2, events_pb2


def _request() -> events_pb2.SolveRequested:
    return events_pb2.SolveRequested(
        request_id="r1",
        problem=domain_pb2.Problem(problem_id="p", language="python", prompt="def f():\n"),
        n=8,
    )


def test_wrap_unwrap_round_trip_keeps_type_and_metadata() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    env = wrap(_request(), producer="test", trace_id="t1", causation_id="c1", created_at=at)
    decoded_env, payload = unwrap(env.SerializeToString())
    assert isinstance(payload, events_pb2.SolveRequested)
    assert payload == _request()
    assert decoded_env.event_type == "codejury.v1.SolveRequested"
    assert decoded_env.schema_version == SCHEMA_VERSION
    assert (decoded_env.trace_id, decoded_env.causation_id, decoded_env.producer) == (
        "t1",
        "c1",
        "test",
    )
    assert decoded_env.created_at.ToDatetime(tzinfo=UTC) == at
    assert len(decoded_env.event_id) == 32


def test_event_ids_are_unique_unless_derived() -> None:
    assert wrap(_request(), producer="a").event_id != wrap(_request(), producer="a").event_id
    assert derived_event_id("x", 0) == derived_event_id("x", 0)
    assert len({derived_event_id("x", 0), derived_event_id("x", 1), derived_event_id("y", 0)}) == 3


@pytest.mark.parametrize(
    "value",
    [b"", None, b"\xff\xff\xff garbage", b"plain text is not protobuf"],
)
def test_malformed_bytes_are_a_permanent_envelope_error(value: bytes | None) -> None:
    with pytest.raises(EnvelopeError) as info:
        unwrap(value)
    assert isinstance(info.value, PermanentError)


def test_envelope_without_payload_is_rejected() -> None:
    bare = events_pb2.Envelope(event_id="e1").SerializeToString()
    with pytest.raises(EnvelopeError, match="without event_id or payload"):
        unwrap(bare)


def test_unknown_payload_type_names_the_type() -> None:
    env = wrap(_request(), producer="test")
    env.payload.type_url = "type.googleapis.com/codejury.v9.FromTheFuture"
    env.event_type = "codejury.v9.FromTheFuture"
    with pytest.raises(EnvelopeError, match=r"codejury\.v9\.FromTheFuture"):
        unwrap(env.SerializeToString())


def test_event_type_must_match_payload() -> None:
    env = wrap(_request(), producer="test")
    env.event_type = "codejury.v1.Feedback"
    with pytest.raises(EnvelopeError, match="event_type"):
        unwrap(env.SerializeToString())
