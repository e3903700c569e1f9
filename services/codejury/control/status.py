"""``RunStatus``: where a self-training run stands, saved as JSON (local runtime) or as the
custom resource's status (operator) and read back with ``from_dict``.

The status is the state machine's only memory: ``reconcile`` reads it and returns the
next one, so a runtime that restarts mid-canary and reloads it takes the same decisions.
It also holds the desired traffic split (``canary_version`` at ``canary_weight`` percent),
which a restarted runtime re-applies. Times are timezone-aware datetimes, written as ISO
8601 strings. ``history`` and ``iterations`` keep the last ``HISTORY_LIMIT`` entries, so
a continuous run's status stays small enough for a custom resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from codejury.control.errors import InvalidStatusError

HISTORY_LIMIT = 50


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
    """A Kubernetes-style condition; ``last_transition_time`` moves only when ``status``
    changes."""

    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: datetime


@dataclass(frozen=True)
class IterationRecord:
    """One iteration: its training attempts, the version it produced, the job's metrics and
    how it ended (None while in flight)."""

    iteration: int
    attempts: int
    started_at: datetime
    version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    outcome: IterationOutcome | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """One entry of the history: what was decided, when, and why (with the measured rates
    for canary decisions)."""

    at: datetime
    iteration: int
    kind: DecisionKind
    reason: str
    version: str | None = None
    weight: int | None = None


@dataclass(frozen=True)
class RunStatus:
    """The run's state; ``RunStatus()`` is a run that has not started."""

    phase: Phase = Phase.PENDING
    iteration: int = 0  # the current (or last) iteration, 1-based; 0 before the first
    training_attempt: int = 0  # attempts of this iteration's training job, 1-based
    stable_version: str | None = None  # None: the version that served before the run
    canary_version: str | None = None
    canary_step: int | None = None  # index into spec.canary.steps
    canary_weight: int = 0  # percent of traffic on canary_version
    step_started_at: datetime | None = None  # canary traffic is counted from here
    iteration_finished_at: datetime | None = None  # the trigger's schedule counts from here
    iterations: tuple[IterationRecord, ...] = ()
    conditions: tuple[Condition, ...] = ()
    history: tuple[Decision, ...] = ()

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values; ``from_dict`` of them equals this status."""
        return {
            "phase": self.phase.value,
            "iteration": self.iteration,
            "training_attempt": self.training_attempt,
            "stable_version": self.stable_version,
            "canary_version": self.canary_version,
            "canary_step": self.canary_step,
            "canary_weight": self.canary_weight,
            "step_started_at": _time_out(self.step_started_at),
            "iteration_finished_at": _time_out(self.iteration_finished_at),
            "iterations": [
                {
                    "iteration": r.iteration,
                    "attempts": r.attempts,
                    "started_at": _time_out(r.started_at),
                    "version": r.version,
                    "metrics": dict(r.metrics),
                    "outcome": None if r.outcome is None else r.outcome.value,
                    "finished_at": _time_out(r.finished_at),
                }
                for r in self.iterations
            ],
            "conditions": [
                {
                    "type": c.type.value,
                    "status": c.status.value,
                    "reason": c.reason,
                    "message": c.message,
                    "last_transition_time": _time_out(c.last_transition_time),
                }
                for c in self.conditions
            ],
            "history": [
                {
                    "at": _time_out(d.at),
                    "iteration": d.iteration,
                    "kind": d.kind.value,
                    "reason": d.reason,
                    "version": d.version,
                    "weight": d.weight,
                }
                for d in self.history
            ],
        }

    @classmethod
    def from_dict(cls, data: object, path: str = "status") -> RunStatus:
        """Read a saved status back; ``InvalidStatusError`` names the field that is wrong."""
        d = _Fields(data, path)
        status = cls(
            phase=d.enum("phase", Phase),
            iteration=d.integer("iteration"),
            training_attempt=d.integer("training_attempt"),
            stable_version=d.optional_text("stable_version"),
            canary_version=d.optional_text("canary_version"),
            canary_step=d.optional_integer("canary_step"),
            canary_weight=d.integer("canary_weight"),
            step_started_at=d.optional_time("step_started_at"),
            iteration_finished_at=d.optional_time("iteration_finished_at"),
            iterations=tuple(_iteration(f) for f in d.items("iterations")),
            conditions=tuple(_condition(f) for f in d.items("conditions")),
            history=tuple(_decision(f) for f in d.items("history")),
        )
        if status.canary_weight not in range(101):
            raise InvalidStatusError(
                f"{path}.canary_weight={status.canary_weight}: not a percentage in 0..100"
            )
        return status


def _iteration(d: _Fields) -> IterationRecord:
    metrics = d.get("metrics")
    if not isinstance(metrics, Mapping) or not all(
        isinstance(k, str) and _is_number(v) for k, v in metrics.items()
    ):
        raise InvalidStatusError(f"{d.path}.metrics={metrics!r}: not a mapping of name: number")
    return IterationRecord(
        iteration=d.integer("iteration"),
        attempts=d.integer("attempts"),
        started_at=d.time("started_at"),
        version=d.optional_text("version"),
        metrics={k: float(v) for k, v in metrics.items()},
        outcome=None if d.get("outcome") is None else d.enum("outcome", IterationOutcome),
        finished_at=d.optional_time("finished_at"),
    )


def _condition(d: _Fields) -> Condition:
    return Condition(
        type=d.enum("type", ConditionType),
        status=d.enum("status", ConditionStatus),
        reason=d.text("reason"),
        message=d.text("message"),
        last_transition_time=d.time("last_transition_time"),
    )


def _decision(d: _Fields) -> Decision:
    return Decision(
        at=d.time("at"),
        iteration=d.integer("iteration"),
        kind=d.enum("kind", DecisionKind),
        reason=d.text("reason"),
        version=d.optional_text("version"),
        weight=d.optional_integer("weight"),
    )


def _time_out(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_E = TypeVar("_E", bound=StrEnum)


class _Fields:
    """A saved mapping at ``path``; every read names the field when it is wrong."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidStatusError(f"{path}={data!r}: not a mapping")
        self.data = data
        self.path = path

    def get(self, key: str) -> object:
        if key not in self.data:
            raise InvalidStatusError(
                f"{self.path}.{key} is missing: the status was not written by RunStatus.to_dict"
            )
        return self.data[key]

    def _wrong(self, key: str, what: str) -> InvalidStatusError:
        return InvalidStatusError(f"{self.path}.{key}={self.data.get(key)!r}: not {what}")

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self.get(key) is None else self.text(key)

    def integer(self, key: str) -> int:
        value = self.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._wrong(key, "a whole number >= 0")
        return value

    def optional_integer(self, key: str) -> int | None:
        return None if self.get(key) is None else self.integer(key)

    def time(self, key: str) -> datetime:
        value = self.get(key)
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise self._wrong(key, "an ISO 8601 time with a timezone")
        return parsed

    def optional_time(self, key: str) -> datetime | None:
        return None if self.get(key) is None else self.time(key)

    def enum(self, key: str, kind: type[_E]) -> _E:
        value = self.get(key)
        for member in kind:
            if member.value == value:
                return member
        raise self._wrong(key, f"one of {[m.value for m in kind]}")

    def items(self, key: str) -> list[_Fields]:
        value = self.get(key)
        if not isinstance(value, list):
            raise self._wrong(key, "a list")
        return [_Fields(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(value)]
