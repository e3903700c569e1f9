"""Errors of the reranking service.

    RerankingError (CodeJuryError)
    ├── InvalidRequestError (InvalidArgumentError)       empty / oversized candidates, an
    │                                                    unknown ranker, a candidate longer
    │                                                    than the model's context, a bad
    │                                                    version id or inference input
    ├── UnknownVersionError (NotFoundError)              the registry has no such version
    ├── VersionConflictError (InvalidArgumentError)      an id already taken, or the stable
    │                                                    version marked canary
    ├── CorruptVersionError (FailedPreconditionError)    a version's manifest or model files
    │                                                    are missing or unreadable
    ├── VersionNotServedError (FailedPreconditionError)  registered, but no endpoint of this
    │                                                    deployment serves it
    ├── RegistryConfigError (ConfigurationError)         the registry URI cannot be used
    ├── ExportError (FailedPreconditionError)            runtime=onnx: the ONNX export of a
    │                                                    version cannot be made or written
    ├── ModelServerError (FailedPreconditionError)       a KServe model server could not start
    │                                                    or sent an answer we cannot read
    └── EndpointUnavailableError (TemporaryError)        a KServe endpoint did not answer

Errors raised inside the KServe model are converted to KServe's own ``InvalidInput`` at
that boundary (``codejury.reranking.kserve_model``), so both protocols report them as
a client error; gRPC statuses coming back from KServe are converted to these types once,
in ``codejury.reranking.clients``.
"""

from __future__ import annotations

from codejury.core.errors import (
    CodeJuryError,
    ConfigurationError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    TemporaryError,
)


class RerankingError(CodeJuryError):
    """Base of the reranking service's errors."""


class InvalidRequestError(RerankingError, InvalidArgumentError):
    """The request cannot be scored as given (the message names the field and the fix)."""


class UnknownVersionError(RerankingError, NotFoundError):
    """The registry holds no version with this id."""


class VersionConflictError(RerankingError, InvalidArgumentError):
    """The id is taken (versions are immutable), or a channel change contradicts another."""


class CorruptVersionError(RerankingError, FailedPreconditionError):
    """A registered version's manifest or model directory cannot be loaded."""


class VersionNotServedError(RerankingError, FailedPreconditionError):
    """The version is registered, but no endpoint of this deployment serves it."""


class RegistryConfigError(RerankingError, ConfigurationError):
    """The registry URI names a scheme or place this build cannot use."""


class ExportError(RerankingError, FailedPreconditionError):
    """runtime=onnx: a version's ONNX export cannot be made, quantized or written."""


class ModelServerError(RerankingError, FailedPreconditionError):
    """A KServe model server failed to start or sent an answer we cannot read."""


class EndpointUnavailableError(RerankingError, TemporaryError):
    """A KServe endpoint did not answer in time, or refused the connection."""
