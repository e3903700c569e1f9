"""Errors of the generation service.

    GenerationError (CodeJuryError)
    ├── InvalidRequestError (InvalidArgumentError)     n out of range, empty prompt, unknown
    │                                                  language, prompt over the model's context
    ├── ModelLoadError (ConfigurationError)            the model or tokenizer would not load:
    │                                                  the service stops at start-up with the reason
    ├── BackendRejectedError (FailedPreconditionError) the model server refused our requests
    │                                                  (authentication, unknown model):
    │                                                  fix the settings
    ├── BackendResponseError (PermanentError)          the model server answered something that is
    │                                                  not the OpenAI API
    ├── BackendUnavailableError (TemporaryError)       the model server did not answer, or is busy
    └── UnexpectedEventError (PermanentError)          a Kafka topic carried the wrong event type

A weak candidate is never an exception: a completion that misses its stop sequence is
returned with ``finish_reason="length"``.
"""

from __future__ import annotations

from codejury.core.errors import (
    CodeJuryError,
    ConfigurationError,
    FailedPreconditionError,
    InvalidArgumentError,
    PermanentError,
    TemporaryError,
)


class GenerationError(CodeJuryError):
    """Base of the generation service's errors."""


class InvalidRequestError(GenerationError, InvalidArgumentError):
    """A request field is wrong; the message names the field, the value and the fix."""


class ModelLoadError(GenerationError, ConfigurationError):
    """The configured model cannot be loaded (missing package, bad path, offline hub id)."""


class BackendRejectedError(GenerationError, FailedPreconditionError):
    """The model server refused the request for a reason the settings must fix."""


class BackendResponseError(GenerationError, PermanentError):
    """The model server's answer does not follow the OpenAI completions API."""


class BackendUnavailableError(GenerationError, TemporaryError):
    """The model server did not answer in time, refused the connection, or is overloaded."""


class UnexpectedEventError(GenerationError, PermanentError):
    """The topic carried an event of the wrong type."""
