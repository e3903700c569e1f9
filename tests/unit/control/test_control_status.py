"""RunStatus: a lossless round trip through JSON, and refusals that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from codejury.control.errors import InvalidStatusError
from codejury.control.status import (
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

from tests.unit.control.control_cases import T0, at

FULL = RunStatus(
    phase=Phase.CANARY,
    iteration=2,
    training_attempt=2,
    stable_version="rr-1-abc",
    canary_version="rr-2-def",
    canary_step=1,
    canary_weight=50,
    step_started_at=at(90.5),
    iteration_finished_at=at(30),
    iterations=(
        IterationRecord(
            1,
            1,
            T0,
            "rr-1-abc",
            {"pairwise_accuracy": 0.71, "pass@1": 0.4},
            IterationOutcome.PROMOTED,
            at(30),
        ),
        IterationRecord(2, 2, at(30), "rr-2-def", {"pairwise_accuracy": 0.75}),
    ),
    conditions=(
        Condition(ConditionType.READY, ConditionStatus.FALSE, "CanaryInProgress", "m", at(60)),
        Condition(
            ConditionType.PROGRESSING,
            ConditionStatus.TRUE,
            "CanaryWaiting",
            "canary has 3 of 100",
            at(1),
        ),
        Condition(
            ConditionType.DEGRADED, ConditionStatus.TRUE, "TrainingRetried", "exit 137", at(45)
        ),
    ),
    history=(
        Decision(at(45), 2, DecisionKind.TRAINING_RETRIED, "exit 137"),
        Decision(at(90.5), 2, DecisionKind.CANARY_ADVANCED, "rates", "rr-2-def", 50),
    ),
)


@pytest.mark.parametrize("status", [RunStatus(), FULL], ids=["new", "mid-canary"])
def test_round_trip_through_json(status: RunStatus) -> None:
    data = json.loads(json.dumps(status.to_dict()))
    assert RunStatus.from_dict(data) == status


def test_times_are_written_as_rfc_3339() -> None:
    assert FULL.to_dict()["stepStartedAt"] == "2025-03-01T13:30:30Z"


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    data = FULL.to_dict()
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (["phase"], "Running", r"^status\.phase='Running': should be 'Pending', 'Training'"),
        (["iteration"], -1, r"^status\.iteration=-1: should be greater than or equal to 0"),
        (["iteration"], "3", r"^status\.iteration='3': should be a valid integer"),
        (["canaryWeight"], 150, r"^status\.canaryWeight=150: should be less than or equal to 100"),
        (
            ["stepStartedAt"],
            "2025-03-01T12:00:00",
            r"^status\.stepStartedAt=.*: should have timezone info",
        ),
        (["stepStartedAt"], "yesterday", r"^status\.stepStartedAt='yesterday'"),
        (["history", 1, "kind"], "Guess", r"^status\.history\[1\]\.kind='Guess'"),
        (
            ["iterations", 0, "metrics"],
            {"acc": "high"},
            r"^status\.iterations\[0\]\.metrics\.acc='high': should be a valid number",
        ),
        (["conditions", 2, "reason"], ..., r"^status\.conditions\[2\]\.reason is missing"),
        (["conditions"], {}, r"^status\.conditions=\{\}: should be a valid tuple"),
        # a status written in the older snake_case form is refused, not read as a new run
        (["training_attempt"], 2, r"^status\.training_attempt=2: is not a field of the status"),
    ],
)
def test_a_broken_status_is_refused_naming_the_field(
    path: list[Any], value: Any, match: str
) -> None:
    with pytest.raises(InvalidStatusError, match=match):
        RunStatus.from_dict(_broken(path, value))


def test_a_status_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidStatusError, match=r"^status='Pending': not a mapping"):
        RunStatus.from_dict("Pending")


def test_terminal_phases() -> None:
    assert {p for p in Phase if p.terminal} == {Phase.COMPLETED, Phase.FAILED}
