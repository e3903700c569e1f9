"""Errors of the execution service.

    ExecutionError (CodeJuryError)
    ├── SandboxUnavailableError (PermanentError)   bubblewrap or cgroups missing: install
    │                                              them, or opt out with --unsafe-no-sandbox
    ├── UnknownLanguageError (PermanentError)      not in the languages registry
    ├── LanguageUnavailableError (PermanentError)  known, but its toolchain is not installed
    └── InvalidRequestError (PermanentError)       empty / oversized program, bad limits

A program's own failure is never an exception: it is an ExecutionResult with a status.
"""

from __future__ import annotations

from codejury.core.errors import CodeJuryError, PermanentError


class ExecutionError(CodeJuryError):
    """Base of the execution service's errors."""


class SandboxUnavailableError(ExecutionError, PermanentError):
    """The isolation this machine would need is missing."""


class UnknownLanguageError(ExecutionError, PermanentError):
    """The language is not in the registry."""


class LanguageUnavailableError(ExecutionError, PermanentError):
    """The language's toolchain is not installed on this machine."""


class InvalidRequestError(ExecutionError, PermanentError):
    """The request cannot be executed as given (the message names the field)."""
