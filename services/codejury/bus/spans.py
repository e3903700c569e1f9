"""What a stage's span says about the event it handles: the messaging attributes of
OpenTelemetry's conventions for Kafka, the stage, and the Solve request the event belongs
to (its id, problem and language), so a trace can be searched by any of them."""

from __future__ import annotations

from google.protobuf import message
from kafka.consumer.fetcher import ConsumerRecord

from codejury.core.tracing import AttributeValue, attributes_of
from codejury.proto.v1 import events_pb2

#: The events of one Solve request that carry its problem whole.
_WITH_PROBLEM = (
    events_pb2.SolveRequested,
    events_pb2.CandidatesGenerated,
    events_pb2.CandidatesExecuted,
    events_pb2.SolveCompleted,
)


def request_attributes(payload: message.Message) -> dict[str, str]:
    """The request an event belongs to: its id, problem and language (empty for other
    events, and for fields left unset)."""
    found = {}
    if isinstance(payload, _WITH_PROBLEM):
        found = {
            "codejury.request_id": payload.request_id,
            "codejury.problem_id": payload.problem.problem_id,
            "codejury.language": payload.problem.language,
        }
    elif isinstance(payload, events_pb2.Feedback):
        found = {
            "codejury.request_id": payload.request_id,
            "codejury.problem_id": payload.problem_id,
            "codejury.language": payload.language,
        }
    return {key: value for key, value in found.items() if value}


def consumer_span_attributes(
    record: ConsumerRecord,
    envelope: events_pb2.Envelope,
    payload: message.Message,
    *,
    group_id: str,
    stage: str,
) -> dict[str, AttributeValue]:
    """The attributes of the consumer span of ``record`` in ``stage``."""
    return attributes_of(
        {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.consumer.group.name": group_id,
            "messaging.message.id": envelope.event_id,
            "messaging.kafka.offset": record.offset,
            "codejury.stage": stage,
            "codejury.event_type": envelope.event_type,
            **request_attributes(payload),
        }
    )
