"""Errors of the Kafka bus.

    BusError (CodeJuryError)
    ├── BrokerUnavailableError (TemporaryError)   no broker answered in time
    ├── PublishError (TemporaryError)             the broker did not acknowledge a record
    ├── RecordTooLargeError (PermanentError)      an event would not fit in one Kafka record
    ├── EnvelopeError (PermanentError)            a record is not a CodeJury event
    └── EmbeddedBrokerError (PermanentError)      tansu missing or would not start

Handlers signal retry intent with core's TemporaryError / PermanentError: the consumer
retries any other exception up to ``handler_max_attempts`` times, a PermanentError not
at all, then dead-letters the record.
"""

from __future__ import annotations

from codejury.core.errors import CodeJuryError, PermanentError, TemporaryError


class BusError(CodeJuryError):
    """Base of the bus's own errors."""


class BrokerUnavailableError(BusError, TemporaryError):
    """No Kafka broker answered at the configured address within the timeout."""


class PublishError(BusError, TemporaryError):
    """A record was not acknowledged by the broker."""


class RecordTooLargeError(BusError, PermanentError):
    """An event is larger than a Kafka record may be: sending it again cannot help."""


class EnvelopeError(BusError, PermanentError):
    """The record's bytes are not an Envelope, or its payload type is unknown."""


class EmbeddedBrokerError(BusError, PermanentError):
    """The embedded tansu broker is missing, failed to start, or died."""
