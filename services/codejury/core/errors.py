"""The root of every CodeJury exception, and the retry intent every error carries.

    CodeJuryError
    ├── PermanentError               retrying cannot help: fix the input or the configuration
    │   ├── ConfigurationError       settings are invalid or unknown (names the setting)
    │   ├── InvalidArgumentError     a request field is wrong (gRPC INVALID_ARGUMENT)
    │   ├── NotFoundError            a named thing does not exist (gRPC NOT_FOUND)
    │   ├── UnauthenticatedError     no credential, or a wrong one (gRPC UNAUTHENTICATED)
    │   └── FailedPreconditionError  valid, but this deployment cannot serve it now
    │                                (gRPC FAILED_PRECONDITION)
    └── TemporaryError               may succeed later; ``delay_s`` suggests when to retry
        │                            (gRPC UNAVAILABLE)
        ├── ResourceExhaustedError   too much in flight; back off (gRPC RESOURCE_EXHAUSTED)
        └── DeadlineExceededError    no answer in time (gRPC DEADLINE_EXCEEDED)

Each package draws its own tree in its ``errors.py`` below these kinds, so a caller can
decide to retry from the type alone (``except TemporaryError``) and the gRPC layer can
pick a status code without knowing the package (``codejury.core.grpc``).
"""

from __future__ import annotations


class CodeJuryError(Exception):
    """Base class of every error CodeJury raises on purpose."""


class PermanentError(CodeJuryError):
    """Retrying the same operation will fail the same way."""


class TemporaryError(CodeJuryError):
    """The operation may succeed if retried after ``delay_s`` seconds."""

    def __init__(self, message: str, *, delay_s: float = 1.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class ConfigurationError(PermanentError):
    """A setting is unknown, malformed or out of range."""


class InvalidArgumentError(PermanentError):
    """A request field is wrong; the message names the field, the value and the fix."""


class NotFoundError(PermanentError):
    """The request names something that does not exist."""


class UnauthenticatedError(PermanentError):
    """The caller sent no credential or a wrong one; the message says how to send one."""


class FailedPreconditionError(PermanentError):
    """The request is valid but this deployment cannot serve it (e.g. a missing toolchain)."""


class ResourceExhaustedError(TemporaryError):
    """Too many requests are in flight; retry after ``delay_s``."""


class DeadlineExceededError(TemporaryError):
    """The answer did not arrive before the request's deadline."""
