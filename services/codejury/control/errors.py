"""Errors of the control package.

    ControlError (CodeJuryError)
    ├── InvalidSpecError (InvalidArgumentError)         a SelfTrainingRun spec field is
    │                                                   missing, mistyped or out of range;
    │                                                   names the field path (e.g.
    │                                                   ``spec.canary.steps[1]``), the value
    │                                                   and the fix
    ├── InvalidStatusError (InvalidArgumentError)       a saved status (JSON file, CR status)
    │                                                   cannot be read back into a RunStatus
    ├── InvalidObservationError (InvalidArgumentError)  what the runtime observed contradicts
    │                                                   itself (negative counts, more passes
    │                                                   than labelled requests, a naive time)
    └── RunFailedError                                  a run ended Failed (training failed
                                                        past its retries); names the reason

Everything here is permanent: control computes over its arguments, so retrying the same
call fails the same way (a failed run is terminal: its status says so until it is edited).
"""

from __future__ import annotations

from codejury.core.errors import CodeJuryError, InvalidArgumentError


class ControlError(CodeJuryError):
    """Base of the control package's errors."""


class InvalidSpecError(ControlError, InvalidArgumentError):
    """A spec field is wrong; the message names the field path, the value and the fix."""

    def __init__(self, path: str, value: object, problem: str, fix: str) -> None:
        super().__init__(f"{path}={value!r}: {problem}; {fix}")
        self.path = path


class InvalidStatusError(ControlError, InvalidArgumentError):
    """A saved status does not parse; the message names the field and the value."""


class InvalidObservationError(ControlError, InvalidArgumentError):
    """An observation is inconsistent; the message names the field and the value."""


class RunFailedError(ControlError):
    """A run ended Failed; ``codejury run`` exits non-zero with the reason."""
