"""What the solve pipeline raises, by the retry intent of ``codejury.core.errors``.

PipelineError
├── InvalidSolveRequestError   a SolveRequest field is wrong (INVALID_ARGUMENT)
├── SolveFailedError           the pipeline answered with an error (FAILED_PRECONDITION)
├── TooManyRequestsError       the in-flight limit is reached (RESOURCE_EXHAUSTED)
├── SolveDeadlineError         no completion before the deadline (DEADLINE_EXCEEDED)
├── StageDownError             a stage is down: exited, or failing its health checks (UNAVAILABLE)
├── StageUnavailableError      a stage gave up on the request for now (UNAVAILABLE)
├── SolveInternalError         a stage failed on it by a fault of ours (INTERNAL; redacted)
├── ServiceStartError          ``codejury up`` could not start a service (names its log)
└── InvalidLoadPlanError       ``codejury bench load`` options out of bounds (INVALID_ARGUMENT)
"""

from __future__ import annotations

from codejury.core.errors import (
    CodeJuryError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    PermanentError,
    ResourceExhaustedError,
    TemporaryError,
)


class PipelineError(CodeJuryError):
    """Base class of the pipeline's errors."""


class InvalidSolveRequestError(PipelineError, InvalidArgumentError):
    """A SolveRequest field is wrong; the message names it and the fix."""


class SolveFailedError(PipelineError, FailedPreconditionError):
    """A stage refused the request for good (the completion carries its reason)."""


class TooManyRequestsError(PipelineError, ResourceExhaustedError):
    """``pipeline.max_in_flight`` requests are already waiting."""


class SolveDeadlineError(PipelineError, DeadlineExceededError):
    """The completion did not arrive before the request's deadline."""


class ServiceStartError(PipelineError, PermanentError):
    """A child service exited or did not report ready in time."""


class StageDownError(PipelineError, TemporaryError):
    """A stage has no live consumer (its process died and ``codejury up`` is restarting it,
    or its health checks have failed for ``pipeline.stage_down_after_s``): the request is
    refused at once instead of waiting out its deadline."""


class StageUnavailableError(PipelineError, TemporaryError):
    """A stage gave up on the request after its retries (its workers did not answer, say):
    the same request may succeed later."""


class SolveInternalError(PipelineError):
    """A stage failed on the request by a fault of ours; the message names the stage and
    the trace id, never the internals. gRPC INTERNAL (``core.grpc.status_for``)."""


class InvalidLoadPlanError(PipelineError, InvalidArgumentError):
    """``codejury bench load`` was asked for a run outside its bounds (the option named)."""
