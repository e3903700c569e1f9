"""What the local runtime counts from the bus, and the demo's replayed canary arms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from codejury.bus.envelope import Event, wrap
from codejury.bus.topics import FEEDBACK, SOLVE_COMPLETED
from codejury.demo.self_training import arm
from codejury.evaluation.metrics import CandidateOutcome, ProblemOutcome
from codejury.proto.v1 import domain_pb2, events_pb2
from codejury.runtime.meter import TrafficMeter

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PASSED, FAILED = events_pb2.FEEDBACK_LABEL_PASSED, events_pb2.FEEDBACK_LABEL_FAILED


def _event(payload: object, at: datetime, topic: str) -> Event:
    envelope = wrap(payload, producer="test", created_at=at)  # type: ignore[arg-type]
    return Event(topic, 0, 0, None, envelope, payload)  # type: ignore[arg-type]


def completed(request: str, version: str, at: datetime, error: str = "") -> Event:
    payload = events_pb2.SolveCompleted(request_id=request, reranker_version=version, error=error)
    return _event(payload, at, SOLVE_COMPLETED)


def feedback(
    request: str,
    version: str,
    at: datetime,
    *,
    label: int,
    chosen: bool,
    score: float | None = None,
    problem: str = "P1",
) -> Event:
    payload = events_pb2.Feedback(
        request_id=request,
        problem_id=problem,
        language="python",
        chosen=chosen,
        reranker_version=version,
        label=label,  # type: ignore[arg-type]
    )
    if score is not None:
        payload.score.CopyFrom(domain_pb2.Score(score=score))
    return _event(payload, at, FEEDBACK)


def test_arms_count_requests_errors_and_the_chosen_candidates_label_since_a_time() -> None:
    meter = TrafficMeter()
    later = T0 + timedelta(minutes=1)
    for event in (
        completed("old", "v1", T0 - timedelta(seconds=1)),  # before the step: not counted
        feedback("old", "v1", T0 - timedelta(seconds=1), label=PASSED, chosen=True),
        completed("r1", "v1", later),
        feedback("r1", "v1", later, label=PASSED, chosen=True),
        feedback("r1", "v1", later, label=FAILED, chosen=False),  # not the pick
        completed("r2", "v1", later),
        feedback("r2", "v1", later, label=FAILED, chosen=True),
        completed("r3", "v1", later, error="reranker down"),
        completed("r4", "v1", later),
        feedback("r4", "v1", later, label=events_pb2.FEEDBACK_LABEL_UNLABELLED, chosen=True),
        completed("c1", "v2", later),
        feedback("c1", "v2", later, label=PASSED, chosen=True),
    ):
        meter.on_event(event)
    meter.record_latency("v1", 120.0, at=later)
    meter.record_latency("v1", 80.0, at=T0 - timedelta(hours=1))  # before: not counted
    stable = meter.arm("v1", T0)
    assert (stable.requests, stable.errors, stable.labelled, stable.passed) == (4, 1, 2, 1)
    assert stable.p99_latency_ms == 120.0
    traffic = meter.traffic(T0, "v1", "v2")
    assert (traffic.canary.requests, traffic.canary.labelled, traffic.canary.passed) == (1, 1, 1)
    assert traffic.canary.p99_latency_ms is None
    assert meter.arm(None, T0).requests == 0


def test_hard_negatives_are_failing_candidates_scored_above_a_passing_one_of_their_request() -> (
    None
):
    meter = TrafficMeter()
    t = T0 + timedelta(seconds=5)
    for event in (
        feedback("r1", "v1", t, label=PASSED, chosen=True, score=0.4),
        feedback("r1", "v1", t, label=FAILED, chosen=False, score=0.9),  # hard
        feedback("r1", "v1", t, label=FAILED, chosen=False, score=0.1),
        feedback("r2", "v1", t, label=FAILED, chosen=True, score=0.9),  # no pass to beat
        feedback("r3", "v1", T0 - timedelta(days=1), label=PASSED, chosen=True, score=0.1),
        feedback("r3", "v1", T0 - timedelta(days=1), label=FAILED, chosen=False, score=0.5),
    ):
        meter.on_event(event)
    assert meter.hard_negatives_since(T0) == 1
    assert meter.hard_negatives_since(None) == 2


def _problem(pid: str, passed: list[bool | None]) -> ProblemOutcome:
    return ProblemOutcome(pid, "python", tuple(CandidateOutcome(p, {}) for p in passed))


def test_a_replayed_arm_passes_a_request_when_its_top_pick_passed() -> None:
    outcomes = [
        _problem("a", [False, True, False]),
        _problem("b", [True, False]),
        _problem("c", [None, True]),  # the pick is unlabelled: not counted
    ]
    stable = arm(outcomes, [[0.9, 0.1, 0.0], [0.5, 0.5], [2.0, 1.0]])  # tie: the first
    canary = arm(outcomes, [[0.1, 0.9, 0.0], [0.2, 0.8], [1.0, 2.0]])
    assert (stable.requests, stable.labelled, stable.passed) == (3, 2, 1)
    assert (canary.requests, canary.labelled, canary.passed) == (3, 3, 2)
