"""Errors of the execution service.

    ExecutionError (CodeJuryError)
    ├── SandboxUnavailableError (FailedPreconditionError)   bubblewrap or cgroups missing:
    │                                  install them, or opt out with --unsafe-no-sandbox
    ├── UnknownLanguageError (InvalidArgumentError)          not in the languages registry
    ├── LanguageUnavailableError (FailedPreconditionError)   toolchain not installed here
    ├── InvalidRequestError (InvalidArgumentError)           empty / oversized program, bad limits
    └── WorkersUnavailableError (TemporaryError)             no sandbox worker answered in time

A program's own failure is never an exception: it is an ExecutionResult with a status.
"""

from __future__ import annotations

from codejury.core.errors import (
    CodeJuryError,
    FailedPreconditionError,
    InvalidArgumentError,
    TemporaryError,
)


class ExecutionError(CodeJuryError):
    """Base of the execution service's errors."""


class SandboxUnavailableError(ExecutionError, FailedPreconditionError):
    """The isolation this machine would need is missing."""


class UnknownLanguageError(ExecutionError, InvalidArgumentError):
    """The language is not in the registry."""


class LanguageUnavailableError(ExecutionError, FailedPreconditionError):
    """The language's toolchain is not installed on this machine."""


class InvalidRequestError(ExecutionError, InvalidArgumentError):
    """The request cannot be executed as given (the message names the field)."""


class WorkersUnavailableError(ExecutionError, TemporaryError):
    """The sandbox workers did not return results within the timeout."""
