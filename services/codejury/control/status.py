"""``RunStatus``: where a self-training run stands, saved as JSON (local runtime) or as the
custom resource's status (operator) and read back with ``from_dict``. Its mapping form is
camelCase (``stableVersion``), and ``control.crd`` writes the CRD's status schema from these
dataclasses, so what the operator stores is what the API server checks.

The status is the state machine's only memory: ``reconcile`` reads it and returns the
next one, so a runtime that restarts mid-canary and reloads it takes the same decisions.
It also holds the desired traffic split (``canary_version`` at ``canary_weight`` percent),
which a restarted runtime re-applies. Times are timezone-aware datetimes, written as RFC 3339
strings. ``history`` and ``iterations`` keep the last ``HISTORY_LIMIT`` entries, so
a continuous run's status stays small enough for a custom resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from codejury.control.errors import InvalidStatusError
from codejury.control.spec import field_path, pydantic_problem

HISTORY_LIMIT = 50

# How the records read and write (``RunStatus.to_dict``): camelCase, as a custom resource's
# status is; built by field name in Python. An unknown key is refused: a status written in
# another form (an older snake_case one) must not be read as a new run.
_CAMEL = ConfigDict(
    alias_generator=to_camel, validate_by_alias=True, validate_by_name=True, extra="forbid"
)
# A count: strict, so "3" or True in a saved status is refused, not read as 3 or 1.
Count = Annotated[int, Field(strict=True, ge=0)]


class Phase(StrEnum):
    PENDING = "Pending"  # nothing started yet
    TRAINING = "Training"  # a training job of ``iteration`` is running (or being started)
    CANARY = "Canary"  # ``canary_version`` serves ``canary_weight`` percent of traffic
    IDLE = "Idle"  # continuous run: waiting for the trigger to start the next iteration
    COMPLETED = "Completed"  # every iteration concluded (terminal)
    FAILED = "Failed"  # training failed past its retries (terminal)

    @property
    def terminal(self) -> bool:
        return self in (Phase.COMPLETED, Phase.FAILED)


class ConditionType(StrEnum):
    READY = "Ready"  # settled: no job or canary in flight, and not failed
    PROGRESSING = "Progressing"  # a training job or a canary is in flight
    DEGRADED = "Degraded"  # the last attempt failed, or the last canary was rolled back


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class IterationOutcome(StrEnum):
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    TRAINING_FAILED = "TrainingFailed"


class DecisionKind(StrEnum):
    TRAINING_STARTED = "TrainingStarted"
    TRAINING_RETRIED = "TrainingRetried"
    TRAINING_FAILED = "TrainingFailed"
    CANARY_STARTED = "CanaryStarted"
    CANARY_ADVANCED = "CanaryAdvanced"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    COMPLETED = "Completed"


@dataclass(frozen=True)
class Condition:
    """A Kubernetes-style condition: its last transition time moves only when its status
    changes."""

    __pydantic_config__: ClassVar[ConfigDict] = _CAMEL

    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: AwareDatetime


@dataclass(frozen=True)
class IterationRecord:
    """One iteration: its training attempts, the version it produced, the job's metrics and
    how it ended (None while in flight)."""

    __pydantic_config__: ClassVar[ConfigDict] = _CAMEL

    iteration: Count
    attempts: Count
    started_at: AwareDatetime
    version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    outcome: IterationOutcome | None = None
    finished_at: AwareDatetime | None = None


@dataclass(frozen=True)
class Decision:
    """One entry of the history: what was decided, when, and why (with the measured rates
    for canary decisions)."""

    __pydantic_config__: ClassVar[ConfigDict] = _CAMEL

    at: AwareDatetime
    iteration: Count
    kind: DecisionKind
    reason: str
    version: str | None = None
    weight: Annotated[int, Field(strict=True, ge=0, le=100)] | None = None


@dataclass(frozen=True)
class RunStatus:
    """The run's state; ``RunStatus()`` is a run that has not started."""

    __pydantic_config__: ClassVar[ConfigDict] = _CAMEL

    phase: Phase = Phase.PENDING
    iteration: Count = 0  # the current (or last) iteration, 1-based; 0 before the first
    training_attempt: Count = 0  # attempts of this iteration's training job, 1-based
    stable_version: str | None = None  # None: the version that served before the run
    canary_version: str | None = None
    canary_step: Count | None = None  # index into spec.canary.steps
    # percent of traffic on canary_version
    canary_weight: Annotated[int, Field(strict=True, ge=0, le=100)] = 0
    step_started_at: AwareDatetime | None = None  # canary traffic is counted from here
    iteration_finished_at: AwareDatetime | None = None  # the trigger's schedule counts from here
    iterations: tuple[IterationRecord, ...] = ()
    conditions: tuple[Condition, ...] = ()
    history: tuple[Decision, ...] = ()

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values, camelCase (the custom resource's status); ``from_dict`` of them
        equals this status."""
        data: dict[str, Any] = _ADAPTER.dump_python(self, mode="json", by_alias=True)
        return data

    @classmethod
    def from_dict(cls, data: object, path: str = "status") -> RunStatus:
        """Read a saved status back; ``InvalidStatusError`` names the field that is wrong
        (an unknown key included)."""
        if not isinstance(data, Mapping):
            raise InvalidStatusError(f"{path}={data!r}: not a mapping")
        try:
            status: RunStatus = _ADAPTER.validate_python(data, by_alias=True, by_name=False)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = field_path(path, error["loc"])
            if error["type"] == "unexpected_keyword_argument":
                raise InvalidStatusError(
                    f"{where}={error.get('input')!r}: is not a field of the status; it was "
                    "written in another form (an older, snake_case one?)"
                ) from None
            if error["type"] == "missing":
                raise InvalidStatusError(
                    f"{where} is missing: the status was not written by RunStatus.to_dict"
                ) from None
            raise InvalidStatusError(
                f"{where}={error.get('input')!r}: {pydantic_problem(error['msg'])}"
            ) from None
        return status


#: Reads and writes RunStatus (and the schema ``control.crd`` puts in the CRD).
_ADAPTER: TypeAdapter[RunStatus] = TypeAdapter(RunStatus)


def status_schema() -> dict[str, Any]:
    """The JSON Schema of ``RunStatus.to_dict()`` (``control.crd`` makes it structural)."""
    return _ADAPTER.json_schema(by_alias=True, mode="serialization")
