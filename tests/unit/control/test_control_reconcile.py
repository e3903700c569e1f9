"""The run's state machine: every transition, whole runs, and restarts mid-canary."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
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
from codejury.control.observations import JobState, Observations, TrainingJob
from codejury.control.reconcile import Reconciled, reconcile
from codejury.control.spec import SelfTrainingRunSpec
from codejury.control.status import (
    HISTORY_LIMIT,
    ConditionStatus,
    ConditionType,
    DecisionKind,
    IterationOutcome,
    Phase,
    RunStatus,
)

from tests.unit.control.control_cases import (
    T0,
    arm,
    at,
    idle,
    in_canary,
    make_spec,
    seen,
    traffic,
    training,
)

CONTINUOUS = {"iterations": "continuous", "trigger": {"hardNegativeThreshold": 50}}
BETTER = traffic(arm(900, 450), arm(100, 70))  # stable 0.50, canary 0.70
WORSE = traffic(arm(900, 540), arm(100, 30))  # stable 0.60, canary 0.30
SHORT = traffic(arm(900, 450), arm(12, 9))  # the canary has 12 of 100 labelled requests
WORSE_REASON = (
    "canary pass rate 0.300 (30/100), stable 0.600 (540/900), canary error rate 0.000: "
    "P(p_canary >= p_stable - 0.05) = 0.0000 < 0.9"
)


def _job(state: JobState, iteration: int = 1, attempt: int = 1, **kw: Any) -> TrainingJob:
    return TrainingJob(iteration, attempt, state, **kw)


def _condition(status: RunStatus, kind: ConditionType) -> tuple[ConditionStatus, str]:
    found = status.condition(kind)
    assert found is not None, kind
    return found.status, found.reason


@dataclass
class Case:
    name: str
    status: RunStatus
    observed: Observations
    phase: Phase
    actions: list[Action]  # every action but the events, in order
    events: list[str] = field(default_factory=list)  # the events' reasons, in order
    spec: dict[str, Any] = field(default_factory=dict)
    check: Callable[[RunStatus], None] = lambda status: None


def _first_training(s: RunStatus) -> None:
    assert (s.iteration, s.training_attempt) == (1, 1)
    assert _condition(s, ConditionType.PROGRESSING) == (ConditionStatus.TRUE, "TrainingStarted")
    assert _condition(s, ConditionType.DEGRADED) == (ConditionStatus.FALSE, "NoFailures")
    assert [d.kind for d in s.history] == [DecisionKind.TRAINING_STARTED]


def _retried(s: RunStatus) -> None:
    assert s.training_attempt == 2
    assert s.iterations[-1].attempts == 2
    assert _condition(s, ConditionType.DEGRADED) == (ConditionStatus.TRUE, "TrainingRetried")
    assert "training attempt 1 of 3 failed: OOMKilled" in s.history[-1].reason


def _failed(s: RunStatus) -> None:
    assert _condition(s, ConditionType.READY) == (ConditionStatus.FALSE, "TrainingFailed")
    assert _condition(s, ConditionType.DEGRADED) == (ConditionStatus.TRUE, "TrainingFailed")
    assert s.iterations[-1].outcome is IterationOutcome.TRAINING_FAILED
    reason = s.history[-1].reason
    assert "attempt 3 of 3 failed: exit code 1" in reason
    assert "no retries left (maxTrainingRetries=2)" in reason


def _canary_started(s: RunStatus) -> None:
    assert (s.canary_version, s.canary_step, s.canary_weight) == ("v2", 0, 10)
    assert s.step_started_at == at(60)
    assert s.iterations[-1].version == "v2"
    assert s.iterations[-1].metrics == {"pairwise_accuracy": 0.8, "pass@1": 0.41}


def _waiting_for(message: str) -> Callable[[RunStatus], None]:
    def check(s: RunStatus) -> None:
        condition = s.condition(ConditionType.PROGRESSING)
        assert condition is not None and message in condition.message

    return check


def _advanced(s: RunStatus) -> None:
    assert (s.canary_step, s.canary_weight, s.step_started_at) == (1, 50, at(60))
    assert s.history[-1].kind is DecisionKind.CANARY_ADVANCED


def _promoted_then_training(s: RunStatus) -> None:
    assert (s.stable_version, s.canary_version, s.canary_weight) == ("v2", None, 0)
    assert s.iteration == 2
    assert s.iterations[0].outcome is IterationOutcome.PROMOTED
    assert s.iteration_finished_at == at(60)
    assert [d.kind for d in s.history] == [DecisionKind.PROMOTED, DecisionKind.TRAINING_STARTED]


def _completed(outcome: IterationOutcome, stable: str) -> Callable[[RunStatus], None]:
    def check(s: RunStatus) -> None:
        assert s.stable_version == stable and s.canary_version is None
        assert s.iterations[-1].outcome is outcome
        assert _condition(s, ConditionType.READY) == (ConditionStatus.TRUE, "Completed")
        assert _condition(s, ConditionType.PROGRESSING) == (ConditionStatus.FALSE, "Completed")

    return check


def _rolled_back(s: RunStatus) -> None:
    assert (s.stable_version, s.canary_version) == ("v1", None)
    assert s.iterations[0].outcome is IterationOutcome.ROLLED_BACK
    assert _condition(s, ConditionType.DEGRADED) == (ConditionStatus.TRUE, "CanaryRolledBack")


def _idle(s: RunStatus) -> None:
    assert (s.stable_version, s.canary_version, s.iteration_finished_at) == ("v2", None, at(60))
    assert _condition(s, ConditionType.READY) == (ConditionStatus.TRUE, "WaitingForTrigger")


CASES = [
    Case(
        "pending starts iteration 1",
        RunStatus(),
        seen(),
        Phase.TRAINING,
        [StartTrainingJob(1, 1, None)],
        ["TrainingStarted"],
        check=_first_training,
    ),
    Case(
        "training without a job asks for it again",
        training(),
        seen(),
        Phase.TRAINING,
        [StartTrainingJob(1, 1, None)],
    ),
    Case(
        "a job of another attempt counts as none",
        training(attempt=2, stable="v1"),
        seen(job=_job(JobState.SUCCEEDED, version="old")),
        Phase.TRAINING,
        [StartTrainingJob(1, 2, "v1")],
    ),
    Case(
        "a running job is waited for",
        training(),
        seen(job=_job(JobState.RUNNING)),
        Phase.TRAINING,
        [],
    ),
    Case(
        "a failed job is retried",
        training(stable="v1"),
        seen(job=_job(JobState.FAILED, reason="OOMKilled")),
        Phase.TRAINING,
        [StartTrainingJob(1, 2, "v1")],
        ["TrainingRetried"],
        check=_retried,
    ),
    Case(
        "the last failure fails the run",
        training(attempt=3),
        seen(job=_job(JobState.FAILED, attempt=3, reason="exit code 1")),
        Phase.FAILED,
        [],
        ["TrainingFailed"],
        check=_failed,
    ),
    Case(
        "no retries: the first failure fails the run",
        training(),
        seen(job=_job(JobState.FAILED, reason="exit code 1")),
        Phase.FAILED,
        [],
        ["TrainingFailed"],
        spec={"maxTrainingRetries": 0},
    ),
    Case(
        "a trained version starts its canary",
        training(stable="v1"),
        seen(
            job=_job(
                JobState.SUCCEEDED, version="v2", metrics={"pass@1": 0.41, "pairwise_accuracy": 0.8}
            )
        ),
        Phase.CANARY,
        [RecordMetrics(1, "v2", {"pairwise_accuracy": 0.8, "pass@1": 0.41}), SetCanary("v2", 10)],
        ["CanaryStarted"],
        check=_canary_started,
    ),
    Case(
        "no traffic: wait",
        in_canary(),
        seen(),
        Phase.CANARY,
        [],
        check=_waiting_for("no traffic observed yet"),
    ),
    Case(
        "too little traffic: wait, even for a perfect canary",
        in_canary(),
        seen(traffic=SHORT),
        Phase.CANARY,
        [],
        check=_waiting_for("canary v2 at 10%: canary has 12 of 100 labelled requests"),
    ),
    Case(
        "traffic counted from before the step: wait",
        in_canary(),
        seen(traffic=traffic(BETTER.stable, BETTER.canary, since=at(-5))),
        Phase.CANARY,
        [],
        check=_waiting_for("before this step started"),
    ),
    Case(
        "pass below the last step: next weight",
        in_canary(weight=10),
        seen(traffic=BETTER),
        Phase.CANARY,
        [SetCanary("v2", 50)],
        ["CanaryAdvanced"],
        check=_advanced,
    ),
    Case(
        "pass before 100 promotes; the next iteration trains from it",
        in_canary(weight=50),
        seen(traffic=BETTER),
        Phase.TRAINING,
        [Promote("v2"), StartTrainingJob(2, 1, "v2")],
        ["Promoted", "TrainingStarted"],
        check=_promoted_then_training,
    ),
    Case(
        "pass in the last iteration completes the run",
        in_canary(weight=50, iteration=2),
        seen(traffic=BETTER),
        Phase.COMPLETED,
        [Promote("v2")],
        ["Promoted", "Completed"],
        check=_completed(IterationOutcome.PROMOTED, "v2"),
    ),
    Case(
        "fail rolls back; the next iteration trains from stable",
        in_canary(weight=10),
        seen(traffic=WORSE),
        Phase.TRAINING,
        [Rollback("v2", WORSE_REASON), StartTrainingJob(2, 1, "v1")],
        ["RolledBack", "TrainingStarted"],
        check=_rolled_back,
    ),
    Case(
        "fail in the last iteration completes the run on the old stable",
        in_canary(weight=50, iteration=2),
        seen(traffic=WORSE),
        Phase.COMPLETED,
        [Rollback("v2", WORSE_REASON)],
        ["RolledBack", "Completed"],
        check=_completed(IterationOutcome.ROLLED_BACK, "v1"),
    ),
    Case(
        "a continuous run waits for the trigger after promoting",
        in_canary(weight=50),
        seen(traffic=BETTER),
        Phase.IDLE,
        [Promote("v2")],
        ["Promoted"],
        spec=CONTINUOUS,
        check=_idle,
    ),
    Case(
        "the trigger fires: next iteration",
        idle(iteration=3),
        seen(new_hard_negatives=50),
        Phase.TRAINING,
        [StartTrainingJob(4, 1, "v1")],
        ["TrainingStarted"],
        spec=CONTINUOUS,
    ),
    Case(
        "the trigger does not fire: stay idle",
        idle(iteration=3),
        seen(new_hard_negatives=49),
        Phase.IDLE,
        [],
        spec=CONTINUOUS,
        check=_waiting_for("waiting: 49 of 50 new hard negatives"),
    ),
    Case(
        "completed is terminal",
        dataclasses.replace(idle(), phase=Phase.COMPLETED),
        seen(traffic=BETTER),
        Phase.COMPLETED,
        [],
    ),
    Case(
        "failed is terminal",
        dataclasses.replace(training(), phase=Phase.FAILED),
        seen(job=_job(JobState.SUCCEEDED, version="v9")),
        Phase.FAILED,
        [],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_transitions(case: Case) -> None:
    spec = make_spec(**case.spec)
    result = reconcile(spec, case.status, case.observed)
    assert result.status.phase is case.phase
    assert [a for a in result.actions if not isinstance(a, EmitEvent)] == case.actions
    assert [a.reason for a in result.actions if isinstance(a, EmitEvent)] == case.events
    case.check(result.status)
    if not result.actions and case.phase is case.status.phase:
        # Nothing happened: only a condition's message may have changed.
        assert dataclasses.replace(result.status, conditions=case.status.conditions) == case.status


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_same_inputs_give_the_same_output(case: Case) -> None:
    spec = make_spec(**case.spec)
    assert reconcile(spec, case.status, case.observed) == reconcile(
        spec, case.status, case.observed
    )


def _reload(status: RunStatus) -> RunStatus:
    """What a restarted runtime reads back: the status through dict and JSON."""
    return RunStatus.from_dict(json.loads(json.dumps(status.to_dict())))


class _World:
    """A runtime's view, ten minutes per tick: every job succeeds with version v<iteration>
    (after ``failures`` failed attempts), the canary serves ``canary`` each step."""

    def __init__(self, canary: Any, failures: int = 0, hard_negatives: int = 0) -> None:
        self.canary = canary
        self.failures = failures
        self.hard_negatives = hard_negatives

    def observe(self, status: RunStatus, tick: int) -> Observations:
        now = at(10 * tick)
        if status.phase is Phase.TRAINING:
            i, attempt = status.iteration, status.training_attempt
            if attempt <= self.failures:
                job = TrainingJob(i, attempt, JobState.FAILED, reason=f"attempt {attempt} died")
            else:
                job = TrainingJob(i, attempt, JobState.SUCCEEDED, f"v{i}", {"pass@1": 0.5})
            return Observations(now=now, job=job)
        if status.phase is Phase.CANARY:
            assert status.step_started_at is not None
            return Observations(
                now=now, traffic=traffic(arm(900, 450), self.canary, status.step_started_at)
            )
        return Observations(now=now, new_hard_negatives=self.hard_negatives)


def _drive(
    spec: SelfTrainingRunSpec, world: _World, ticks: int, *, restart: bool = False
) -> list[Reconciled]:
    status, outputs = RunStatus(), []
    for tick in range(ticks):
        out = reconcile(spec, status, world.observe(status, tick))
        outputs.append(out)
        status = _reload(out.status) if restart else out.status
    return outputs


def _work(outputs: list[Reconciled]) -> list[Action]:
    return [a for out in outputs for a in out.actions if not isinstance(a, EmitEvent)]


def test_a_better_canary_is_promoted_through_every_step() -> None:
    spec = make_spec(iterations=1)
    outputs = _drive(spec, _World(arm(100, 70)), 5)
    assert _work(outputs) == [
        StartTrainingJob(1, 1, None),
        RecordMetrics(1, "v1", {"pass@1": 0.5}),
        SetCanary("v1", 10),
        SetCanary("v1", 50),
        Promote("v1"),
    ]
    final = outputs[-1].status
    assert final.phase is Phase.COMPLETED and final.stable_version == "v1"
    assert [d.kind for d in final.history] == [
        DecisionKind.TRAINING_STARTED,
        DecisionKind.CANARY_STARTED,
        DecisionKind.CANARY_ADVANCED,
        DecisionKind.PROMOTED,
        DecisionKind.COMPLETED,
    ]
    assert [d.weight for d in final.history[1:4]] == [10, 50, 100]
    assert outputs[-1].actions == ()  # terminal: the fifth tick does nothing


def test_a_worse_canary_is_rolled_back_at_the_first_step_with_its_rates() -> None:
    spec = make_spec(iterations=1)
    outputs = _drive(spec, _World(arm(100, 30)), 4)
    work = _work(outputs)
    assert work[:3] == [
        StartTrainingJob(1, 1, None),
        RecordMetrics(1, "v1", {"pass@1": 0.5}),
        SetCanary("v1", 10),
    ]
    assert work[3:] == [
        Rollback(
            "v1",
            "canary pass rate 0.300 (30/100), stable 0.500 (450/900), canary error rate 0.000: "
            "P(p_canary >= p_stable - 0.05) = 0.0020 < 0.9",
        )
    ]
    final = outputs[-1].status
    assert (final.phase, final.stable_version, final.canary_version) == (
        Phase.COMPLETED,
        None,
        None,
    )
    assert final.history[-2].kind is DecisionKind.ROLLED_BACK and final.history[-2].weight == 10
    assert not any(isinstance(a, SetCanary) and a.weight == 50 for a in work)


def test_too_little_traffic_never_decides() -> None:
    spec = make_spec(iterations=1)
    outputs = _drive(spec, _World(arm(99, 99)), 30)
    assert _work(outputs) == [
        StartTrainingJob(1, 1, None),
        RecordMetrics(1, "v1", {"pass@1": 0.5}),
        SetCanary("v1", 10),
    ]
    final = outputs[-1].status
    assert (final.phase, final.canary_weight, final.step_started_at) == (Phase.CANARY, 10, at(10))


def test_training_failures_retry_up_to_the_limit_then_fail_the_run() -> None:
    spec = make_spec(maxTrainingRetries=2)
    outputs = _drive(spec, _World(arm(100, 70), failures=5), 6)
    assert _work(outputs) == [
        StartTrainingJob(1, 1, None),
        StartTrainingJob(1, 2, None),
        StartTrainingJob(1, 3, None),
    ]
    final = outputs[-1].status
    assert final.phase is Phase.FAILED
    assert "attempt 3 of 3 failed: attempt 3 died" in final.history[-1].reason


def test_a_retry_that_succeeds_goes_on_to_the_canary() -> None:
    outputs = _drive(make_spec(iterations=1), _World(arm(100, 70), failures=2), 6)
    final = outputs[-1].status
    assert final.phase is Phase.COMPLETED
    assert final.iterations[0].attempts == 3
    assert final.iterations[0].outcome is IterationOutcome.PROMOTED
    # Degraded by the failed attempts until the promotion cleared it.
    assert _condition(final, ConditionType.DEGRADED) == (ConditionStatus.FALSE, "Promoted")


@pytest.mark.parametrize(
    "canary", [arm(100, 70), arm(100, 30), arm(40, 40)], ids=["better", "worse", "short"]
)
def test_restarting_every_tick_decides_as_running_through(canary: Any) -> None:
    spec = make_spec(iterations=2)
    assert _drive(spec, _World(canary), 12, restart=True) == _drive(spec, _World(canary), 12)


def test_restarting_mid_canary_gives_the_same_decision() -> None:
    spec = make_spec()
    status = _drive(spec, _World(arm(100, 70)), 3)[-1].status  # canary v1 at 50%
    assert (status.phase, status.canary_weight) == (Phase.CANARY, 50)
    assert status.step_started_at is not None
    for canary in (arm(100, 70), arm(100, 30), arm(10, 10)):
        observed = Observations(
            now=at(45), traffic=traffic(arm(900, 450), canary, status.step_started_at)
        )
        assert reconcile(spec, _reload(status), observed) == reconcile(spec, status, observed)


def test_conditions_keep_their_transition_time_while_their_status_holds() -> None:
    outputs = _drive(make_spec(iterations=1), _World(arm(100, 70)), 4)
    mid = outputs[2].status  # advanced to 50% at tick 2
    ready, progressing = (
        mid.condition(ConditionType.READY),
        mid.condition(ConditionType.PROGRESSING),
    )
    assert ready is not None and progressing is not None
    assert (ready.status, ready.last_transition_time) == (ConditionStatus.FALSE, T0)
    assert (progressing.reason, progressing.last_transition_time) == ("CanaryAdvanced", T0)
    done = outputs[3].status.condition(ConditionType.READY)
    assert done is not None and (done.status, done.last_transition_time) == (
        ConditionStatus.TRUE,
        at(30),
    )


def test_a_continuous_run_idles_and_restarts_on_the_trigger() -> None:
    spec = make_spec(**CONTINUOUS)
    outputs = _drive(spec, _World(arm(100, 70), hard_negatives=10), 6)
    assert outputs[3].status.phase is Phase.IDLE
    assert outputs[5].status.phase is Phase.IDLE and outputs[5].actions == ()
    fired = reconcile(spec, outputs[5].status, Observations(now=at(60), new_hard_negatives=50))
    assert fired.status.phase is Phase.TRAINING
    assert _work([fired]) == [StartTrainingJob(2, 1, "v1")]


def test_a_long_continuous_run_keeps_a_bounded_status() -> None:
    spec = make_spec(**CONTINUOUS)
    outputs = _drive(spec, _World(arm(100, 30), hard_negatives=50), 8 * HISTORY_LIMIT)
    final = outputs[-1].status
    assert final.iteration > HISTORY_LIMIT
    assert len(final.history) == HISTORY_LIMIT
    assert len(final.iterations) == HISTORY_LIMIT
    assert final.iterations[-1].iteration == final.iteration
    assert final.stable_version is None  # every canary was worse: nothing promoted


def test_steps_edited_mid_canary_take_the_next_larger_weight() -> None:
    status = in_canary(weight=10)
    edited = make_spec(canary={"steps": [20, 100]})
    out = reconcile(edited, status, seen(traffic=BETTER))
    assert _work([out]) == [SetCanary("v2", 20)]
    assert (out.status.canary_step, out.status.canary_weight) == (0, 20)
    out = reconcile(edited, in_canary(weight=50), seen(traffic=BETTER))
    assert _work([out]) == [Promote("v2"), StartTrainingJob(2, 1, "v2")]


def test_events_are_warnings_only_for_failures() -> None:
    outputs = _drive(make_spec(iterations=2), _World(arm(100, 30), failures=1), 10)
    events = [a for out in outputs for a in out.actions if isinstance(a, EmitEvent)]
    warnings = {e.reason for e in events if e.type is EventType.WARNING}
    assert warnings == {"TrainingRetried", "RolledBack"}
    assert {e.reason for e in events} - warnings == {
        "TrainingStarted",
        "CanaryStarted",
        "Completed",
    }
