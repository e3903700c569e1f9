"""What ``reconcile`` asks the runtime to do, as data.

Each action is idempotent ("make it so"): the runtime (a local process, or kopf handlers)
applies them in order and may apply one twice after a crash. The training job registers
the reranker version it trained itself (``codejury train iteration``) and reports its id,
so there is no registration action; the traffic split an action sets is also kept in the
status (``canary_version``, ``canary_weight``), for a restarted runtime to re-apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class StartTrainingJob:
    """Start the training job of ``iteration`` (attempt ``attempt``, 1-based) unless one
    with that (iteration, attempt) exists; ``parent_version`` is the reranker it improves
    (None: the version that served before the run)."""

    iteration: int
    attempt: int
    parent_version: str | None


@dataclass(frozen=True)
class SetCanary:
    """Send ``weight`` percent of traffic to ``version``, the rest to the stable version."""

    version: str
    weight: int


@dataclass(frozen=True)
class Promote:
    """Make ``version`` the stable version with all traffic; no canary remains."""

    version: str


@dataclass(frozen=True)
class Rollback:
    """Take all traffic off ``version`` (back to stable); ``reason`` has the measured rates."""

    version: str
    reason: str


@dataclass(frozen=True)
class RecordMetrics:
    """Export the metrics the training job of ``iteration`` reported for ``version``."""

    iteration: int
    version: str
    metrics: dict[str, float] = field(default_factory=dict)


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class EmitEvent:
    """Tell a person: a Kubernetes event on the run, or a log line locally."""

    type: EventType
    reason: str
    message: str


Action = StartTrainingJob | SetCanary | Promote | Rollback | RecordMetrics | EmitEvent
