"""Errors of the operator.

    OperatorError (CodeJuryError)
    ├── CredentialsError (ConfigurationError)  no way to reach the API server: neither the
    │                                  in-cluster service account nor a kubeconfig
    ├── ApiError (TemporaryError)      the API server refused or failed a request; retryable
    │   │                              (kopf retries the handler later)
    │   ├── NotFoundError              the object does not exist (404)
    │   ├── ConflictError              the object exists already (409)
    │   └── MetricsQueryError          Prometheus did not answer a canary query (retryable)
    └── InvalidRunError (PermanentError)  the custom resource cannot be read (its spec does not
                                       parse, its saved status does not parse, an annotation
                                       is wrong); permanent until someone edits the resource

The kubernetes client's ``ApiException`` and urllib3's errors are converted to
``ApiError`` in ``kube`` (``raise ... from exc``); nothing else here sees them.
"""

from __future__ import annotations

from codejury.core.errors import (
    CodeJuryError,
    ConfigurationError,
    PermanentError,
    TemporaryError,
)


class OperatorError(CodeJuryError):
    """Base of the operator's errors."""


class CredentialsError(OperatorError, ConfigurationError):
    """No credentials for the API server were found where the client looks for them."""


class ApiError(OperatorError, TemporaryError):
    """A request to the API server failed; trying again later may succeed."""

    def __init__(self, message: str, *, status: int | None = None, delay_s: float = 5.0) -> None:
        super().__init__(message, delay_s=delay_s)
        self.status = status


class NotFoundError(ApiError):
    """The object asked for does not exist."""


class ConflictError(ApiError):
    """The object to create exists already."""


class InvalidRunError(OperatorError, PermanentError):
    """The SelfTrainingRun cannot be acted on until it is edited; the message says how."""


class MetricsQueryError(ApiError):
    """Prometheus failed or refused a query of the canary's traffic; retried next tick."""
