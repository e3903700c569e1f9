"""The event envelope: every Kafka record value is one serialized ``Envelope``.

Wrapping packs the payload in ``google.protobuf.Any`` so the type travels with the
bytes; unwrapping looks the type up in the default descriptor pool, so any message of
``codejury.proto.v1`` decodes without a registry to keep in sync.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf import descriptor_pool, message, message_factory
from google.protobuf.message import DecodeError

from codejury.bus.errors import EnvelopeError
from codejury.proto.v1 import events_pb2

SCHEMA_VERSION = 1

# Output event ids are derived from the input's id, so a handler re-run after a crash
# produces the same ids and downstream consumers drop the repeats.
_EVENT_NS = uuid.UUID("5f0c6a53-2a7e-4c83-9a53-7a6f5e0b9d11")


def new_event_id() -> str:
    return uuid.uuid4().hex


def derived_event_id(cause_id: str, index: int) -> str:
    """A deterministic id for the ``index``-th event produced while handling ``cause_id``."""
    return uuid.uuid5(_EVENT_NS, f"{cause_id}/{index}").hex


def wrap(
    payload: message.Message,
    *,
    producer: str,
    event_id: str | None = None,
    trace_id: str | None = None,
    causation_id: str = "",
    created_at: datetime | None = None,
    deadline: datetime | None = None,
) -> events_pb2.Envelope:
    """Put ``payload`` in a new envelope (fresh event id and trace id unless given)."""
    env = events_pb2.Envelope(
        event_id=event_id or new_event_id(),
        event_type=payload.DESCRIPTOR.full_name,
        schema_version=SCHEMA_VERSION,
        trace_id=trace_id or uuid.uuid4().hex,
        producer=producer,
        causation_id=causation_id,
    )
    env.created_at.FromDatetime(created_at or datetime.now(UTC))
    if deadline is not None:
        env.deadline.FromDatetime(deadline)
    env.payload.Pack(payload)
    return env


def unwrap(value: bytes | None) -> tuple[events_pb2.Envelope, message.Message]:
    """Decode a record value into its envelope and typed payload.

    Raises EnvelopeError when the bytes are not an envelope, the envelope lacks its
    event id, or the payload's type is unknown to this build.
    """
    if not value:
        raise EnvelopeError("empty record value: every CodeJury event is a serialized Envelope")
    try:
        env = events_pb2.Envelope.FromString(value)
    except DecodeError as exc:
        raise EnvelopeError(f"record value is not a protobuf Envelope: {exc}") from exc
    if not env.event_id or not env.payload.type_url:
        raise EnvelopeError(
            "record decoded to an Envelope without event_id or payload: "
            "it was not produced by a CodeJury publisher"
        )
    type_name = env.payload.TypeName()
    if env.event_type and env.event_type != type_name:
        raise EnvelopeError(
            f"envelope says event_type {env.event_type!r} but carries {type_name!r}"
        )
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
    except KeyError as exc:
        raise EnvelopeError(
            f"unknown payload type {type_name!r}: the producer is newer than this consumer"
        ) from exc
    payload = message_factory.GetMessageClass(descriptor)()
    if not env.payload.Unpack(payload):
        raise EnvelopeError(f"payload does not decode as {type_name}")
    return env, payload


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded record as a handler sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    envelope: events_pb2.Envelope
    payload: message.Message

    @property
    def event_id(self) -> str:
        return self.envelope.event_id

    @property
    def trace_id(self) -> str:
        return self.envelope.trace_id


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event a handler wants published once it returns."""

    topic: str
    payload: message.Message
    key: str | None = None


def deadline_of(envelope: events_pb2.Envelope) -> datetime | None:
    """The envelope's deadline (timezone-aware), or None when it has none."""
    if not envelope.HasField("deadline"):
        return None
    return envelope.deadline.ToDatetime(tzinfo=UTC)
