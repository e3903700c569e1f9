"""The run's state machine: ``reconcile(spec, status, observations) -> (status, actions)``.

Pure and deterministic: the same three arguments always give the same answer, so a
runtime that restarts and reloads its saved status decides as it would have without the
restart. The runtime applies the actions in order (each is idempotent) and saves the new
status.

    phase      observed                          next phase  actions
    ---------  --------------------------------  ----------  ------------------------------
    Pending    anything                          Training    StartTrainingJob(1, 1)
    Training   no job for (iteration, attempt)   Training    StartTrainingJob again
    Training   job running                       Training    none
    Training   job failed, attempts left         Training    StartTrainingJob(i, attempt+1)
    Training   job failed, no attempts left      Failed      EmitEvent(Warning)
    Training   job succeeded with version v      Canary      RecordMetrics, SetCanary(v,
                                                             steps[0])
    Canary     WAIT (too little traffic)         Canary      none (condition message only)
    Canary     PASS, next step below 100         Canary      SetCanary(v, next weight)
    Canary     PASS, next step is 100            (*)         Promote(v)
    Canary     FAIL (guard or pass-rate test)    (*)         Rollback(v, measured rates)
    Idle       trigger fires                     Training    StartTrainingJob(i+1, 1)
    Idle       trigger does not fire             Idle        none (condition message only)
    Completed  anything                          Completed   none
    Failed     anything                          Failed      none

    (*) the iteration has concluded: Completed when it was the last of a fixed number,
        Training (StartTrainingJob(i+1, 1)) when more remain, Idle for a continuous run.

Every transition also emits an ``EmitEvent`` and records a ``Decision`` in the history.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, TypeVar

from codejury.control.actions import (
    Action,
    EmitEvent,
    EventType,
    Promote,
    RecordMetrics,
    Rollback,
    SetCanary,
    StartTrainingJob,
)
from codejury.control.canary import Verdict, analyse
from codejury.control.observations import JobState, Observations, TrainingJob
from codejury.control.spec import SelfTrainingRunSpec
from codejury.control.status import (
    HISTORY_LIMIT,
    Condition,
    ConditionStatus,
    ConditionType,
    Decision,
    DecisionKind,
    IterationOutcome,
    IterationRecord,
    Phase,
    RunStatus,
)
from codejury.control.trigger import should_start_iteration

_T = TypeVar("_T")
_CONDITION_ORDER = (ConditionType.READY, ConditionType.PROGRESSING, ConditionType.DEGRADED)


class Reconciled(NamedTuple):
    status: RunStatus
    actions: tuple[Action, ...]


def reconcile(
    spec: SelfTrainingRunSpec, status: RunStatus, observations: Observations
) -> Reconciled:
    """The next status and the actions that get there, from what was observed."""
    now = observations.now
    if status.phase is Phase.PENDING:
        started = _condition(
            status, ConditionType.DEGRADED, False, "NoFailures", "nothing has failed", now=now
        )
        return _start_iteration(started, 1, now, "the run was created")
    if status.phase is Phase.TRAINING:
        return _training(spec, status, observations.job, now)
    if status.phase is Phase.CANARY:
        return _canary(spec, status, observations, now)
    if status.phase is Phase.IDLE:
        return _idle(spec, status, observations, now)
    return Reconciled(status, ())  # Completed and Failed are terminal


def _training(
    spec: SelfTrainingRunSpec, status: RunStatus, job: TrainingJob | None, now: datetime
) -> Reconciled:
    i, attempt = status.iteration, status.training_attempt
    if job is None or (job.iteration, job.attempt) != (i, attempt):
        # Started but not there (lost, or not created yet): ask again; it is idempotent.
        return Reconciled(status, (StartTrainingJob(i, attempt, status.stable_version),))
    if job.state is JobState.RUNNING:
        return Reconciled(status, ())
    if job.state is JobState.FAILED:
        allowed = 1 + spec.max_training_retries
        why = f"iteration {i}: training attempt {attempt} of {allowed} failed: {job.reason}"
        if attempt < allowed:
            retried = _record(status, now, DecisionKind.TRAINING_RETRIED, why)
            retried = _update_iteration(
                retried, lambda r: dataclasses.replace(r, attempts=attempt + 1)
            )
            retried = dataclasses.replace(retried, training_attempt=attempt + 1)
            retried = _condition(
                retried, ConditionType.PROGRESSING, True, "TrainingRetried", why, now=now
            )
            retried = _condition(
                retried, ConditionType.DEGRADED, True, "TrainingRetried", why, now=now
            )
            return Reconciled(
                retried,
                (
                    StartTrainingJob(i, attempt + 1, status.stable_version),
                    EmitEvent(EventType.WARNING, "TrainingRetried", why),
                ),
            )
        message = (
            f"{why}; no retries left (maxTrainingRetries={spec.max_training_retries}): "
            "fix the training job's cause and start a new run"
        )
        failed = _record(status, now, DecisionKind.TRAINING_FAILED, message)
        failed = _update_iteration(
            failed,
            lambda r: dataclasses.replace(
                r, outcome=IterationOutcome.TRAINING_FAILED, finished_at=now
            ),
        )
        failed = dataclasses.replace(failed, phase=Phase.FAILED, iteration_finished_at=now)
        for kind, value in (
            (ConditionType.READY, False),
            (ConditionType.PROGRESSING, False),
            (ConditionType.DEGRADED, True),
        ):
            failed = _condition(failed, kind, value, "TrainingFailed", message, now=now)
        return Reconciled(failed, (EmitEvent(EventType.WARNING, "TrainingFailed", message),))
    # SUCCEEDED: the job registered ``version``; start its canary at the first step.
    version = job.version or ""
    metrics = dict(sorted(job.metrics.items()))
    weight = spec.canary.steps[0]
    message = f"iteration {i} trained {version}; canary at {weight}% of traffic"
    canary = _record(
        status, now, DecisionKind.CANARY_STARTED, message, version=version, weight=weight
    )
    canary = _update_iteration(
        canary, lambda r: dataclasses.replace(r, version=version, metrics=metrics)
    )
    canary = dataclasses.replace(
        canary,
        phase=Phase.CANARY,
        canary_version=version,
        canary_step=0,
        canary_weight=weight,
        step_started_at=now,
    )
    canary = _condition(canary, ConditionType.READY, False, "CanaryInProgress", message, now=now)
    canary = _condition(canary, ConditionType.PROGRESSING, True, "CanaryStarted", message, now=now)
    return Reconciled(
        canary,
        (
            RecordMetrics(i, version, metrics),
            SetCanary(version, weight),
            EmitEvent(EventType.NORMAL, "CanaryStarted", message),
        ),
    )


def _canary(
    spec: SelfTrainingRunSpec, status: RunStatus, observations: Observations, now: datetime
) -> Reconciled:
    version = status.canary_version or ""
    weight = status.canary_weight
    traffic = observations.traffic
    if traffic is None:
        return _waiting(status, now, f"canary {version} at {weight}%: no traffic observed yet")
    started = status.step_started_at
    if started is not None and traffic.since < started:
        return _waiting(
            status,
            now,
            f"canary {version} at {weight}%: traffic was counted from {traffic.since.isoformat()}"
            f", before this step started at {started.isoformat()}; count from the step's start",
        )
    decision = analyse(spec.canary, traffic.stable, traffic.canary)
    if decision.verdict is Verdict.WAIT:
        return _waiting(status, now, f"canary {version} at {weight}%: {decision.reason}")
    i = status.iteration
    if decision.verdict is Verdict.FAIL:
        message = f"iteration {i}: rolled back {version} at {weight}%: {decision.reason}"
        rolled = _record(
            status, now, DecisionKind.ROLLED_BACK, message, version=version, weight=weight
        )
        rolled = _update_iteration(
            rolled,
            lambda r: dataclasses.replace(r, outcome=IterationOutcome.ROLLED_BACK, finished_at=now),
        )
        rolled = _condition(
            rolled, ConditionType.DEGRADED, True, "CanaryRolledBack", message, now=now
        )
        return _conclude(
            spec,
            rolled,
            now,
            (
                Rollback(version, decision.reason),
                EmitEvent(EventType.WARNING, "RolledBack", message),
            ),
        )
    following = min(w for w in spec.canary.steps if w > weight)  # steps end at 100
    if following < 100:
        message = f"canary {version}: {weight}% -> {following}%: {decision.reason}"
        advanced = _record(
            status, now, DecisionKind.CANARY_ADVANCED, message, version=version, weight=following
        )
        advanced = dataclasses.replace(
            advanced,
            canary_step=spec.canary.steps.index(following),
            canary_weight=following,
            step_started_at=now,
        )
        advanced = _condition(
            advanced, ConditionType.PROGRESSING, True, "CanaryAdvanced", message, now=now
        )
        return Reconciled(
            advanced,
            (SetCanary(version, following), EmitEvent(EventType.NORMAL, "CanaryAdvanced", message)),
        )
    message = f"iteration {i}: promoted {version} from {weight}%: {decision.reason}"
    promoted = _record(status, now, DecisionKind.PROMOTED, message, version=version, weight=100)
    promoted = _update_iteration(
        promoted,
        lambda r: dataclasses.replace(r, outcome=IterationOutcome.PROMOTED, finished_at=now),
    )
    promoted = dataclasses.replace(promoted, stable_version=version)
    promoted = _condition(promoted, ConditionType.DEGRADED, False, "Promoted", message, now=now)
    return _conclude(
        spec, promoted, now, (Promote(version), EmitEvent(EventType.NORMAL, "Promoted", message))
    )


def _conclude(
    spec: SelfTrainingRunSpec, status: RunStatus, now: datetime, actions: tuple[Action, ...]
) -> Reconciled:
    """The iteration ended (promoted or rolled back): clear the canary and go on."""
    ended = dataclasses.replace(
        status,
        canary_version=None,
        canary_step=None,
        canary_weight=0,
        step_started_at=None,
        iteration_finished_at=now,
    )
    following = _next_iteration(spec, ended, now)
    return Reconciled(following.status, actions + following.actions)


def _next_iteration(spec: SelfTrainingRunSpec, status: RunStatus, now: datetime) -> Reconciled:
    i = status.iteration
    if spec.continuous:
        message = f"iteration {i} ended; the next starts when the trigger fires"
        idle = dataclasses.replace(status, phase=Phase.IDLE)
        idle = _condition(idle, ConditionType.READY, True, "WaitingForTrigger", message, now=now)
        idle = _condition(
            idle, ConditionType.PROGRESSING, False, "WaitingForTrigger", message, now=now
        )
        return Reconciled(idle, ())
    total = int(spec.iterations)
    if i >= total:
        message = f"all {total} iterations ended; stable version {status.stable_version}"
        done = _record(status, now, DecisionKind.COMPLETED, message, version=status.stable_version)
        done = dataclasses.replace(done, phase=Phase.COMPLETED)
        done = _condition(done, ConditionType.READY, True, "Completed", message, now=now)
        done = _condition(done, ConditionType.PROGRESSING, False, "Completed", message, now=now)
        return Reconciled(done, (EmitEvent(EventType.NORMAL, "Completed", message),))
    return _start_iteration(status, i + 1, now, f"iteration {i} of {total} ended")


def _idle(
    spec: SelfTrainingRunSpec, status: RunStatus, observations: Observations, now: datetime
) -> Reconciled:
    if spec.trigger is None:  # the spec was edited to a fixed number of iterations
        return _next_iteration(spec, status, now)
    decision = should_start_iteration(
        spec.trigger, observations.new_hard_negatives, status.iteration_finished_at, now
    )
    if decision.fire:
        return _start_iteration(status, status.iteration + 1, now, decision.reason)
    waiting = _condition(
        status, ConditionType.PROGRESSING, False, "WaitingForTrigger", decision.reason, now=now
    )
    return Reconciled(waiting, ())


def _start_iteration(status: RunStatus, iteration: int, now: datetime, why: str) -> Reconciled:
    message = f"iteration {iteration} training started: {why}"
    started = dataclasses.replace(
        status,
        phase=Phase.TRAINING,
        iteration=iteration,
        training_attempt=1,
        iterations=_capped(status.iterations, IterationRecord(iteration, 1, now)),
    )
    started = _record(started, now, DecisionKind.TRAINING_STARTED, message)
    started = _condition(
        started, ConditionType.READY, False, "TrainingInProgress", message, now=now
    )
    started = _condition(
        started, ConditionType.PROGRESSING, True, "TrainingStarted", message, now=now
    )
    return Reconciled(
        started,
        (
            StartTrainingJob(iteration, 1, status.stable_version),
            EmitEvent(EventType.NORMAL, "TrainingStarted", message),
        ),
    )


def _waiting(status: RunStatus, now: datetime, message: str) -> Reconciled:
    """No decision: only the Progressing condition's message says what is awaited."""
    return Reconciled(
        _condition(status, ConditionType.PROGRESSING, True, "CanaryWaiting", message, now=now), ()
    )


def _condition(
    status: RunStatus, kind: ConditionType, value: bool, reason: str, message: str, *, now: datetime
) -> RunStatus:
    """Set one condition; its transition time moves only when its status changes."""
    new_status = ConditionStatus.TRUE if value else ConditionStatus.FALSE
    old = status.condition(kind)
    since = old.last_transition_time if old is not None and old.status == new_status else now
    updated = {c.type: c for c in status.conditions}
    updated[kind] = Condition(kind, new_status, reason, message, since)
    ordered = tuple(updated[k] for k in _CONDITION_ORDER if k in updated)
    return dataclasses.replace(status, conditions=ordered)


def _record(
    status: RunStatus,
    now: datetime,
    kind: DecisionKind,
    reason: str,
    *,
    version: str | None = None,
    weight: int | None = None,
) -> RunStatus:
    decision = Decision(now, status.iteration, kind, reason, version, weight)
    return dataclasses.replace(status, history=_capped(status.history, decision))


def _update_iteration(
    status: RunStatus, change: Callable[[IterationRecord], IterationRecord]
) -> RunStatus:
    """Change the current iteration's record (the last one)."""
    records = status.iterations
    if not records or records[-1].iteration != status.iteration:
        return status  # never recorded (a status from before the run): nothing to change
    return dataclasses.replace(status, iterations=(*records[:-1], change(records[-1])))


def _capped(items: tuple[_T, ...], item: _T) -> tuple[_T, ...]:
    return (*items, item)[-HISTORY_LIMIT:]
