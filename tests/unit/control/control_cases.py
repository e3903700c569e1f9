"""Builders shared by the control tests: specs, statuses in each phase, traffic."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from codejury.control.observations import ArmStats, CanaryTraffic, Observations
from codejury.control.spec import SelfTrainingRunSpec, parse_spec
from codejury.control.status import IterationRecord, Phase, RunStatus

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# Small enough to write counts by hand: 100 labelled requests per arm decide a step.
BASE_SPEC: dict[str, Any] = {
    "generator": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "rewardModelBackbone": "sentence-transformers/all-MiniLM-L6-v2",
    "datasets": ["mbxp"],
    "iterations": 2,
    "canary": {"steps": [10, 50, 100], "minSamples": 100, "margin": 0.05, "confidence": 0.9},
    "maxTrainingRetries": 2,
}


#: Core tolerations of a GPU pool on spot nodes: one of each operator, one with seconds.
GPU_TOLERATIONS: list[dict[str, Any]] = [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {
        "key": "spot",
        "operator": "Equal",
        "value": "true",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]


def spec_dict(**overrides: Any) -> dict[str, Any]:
    """BASE_SPEC with top-level overrides; a dict value is merged into the sub-mapping."""
    data = copy.deepcopy(BASE_SPEC)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def make_spec(**overrides: Any) -> SelfTrainingRunSpec:
    return parse_spec(spec_dict(**overrides))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def training(iteration: int = 1, attempt: int = 1, stable: str | None = None) -> RunStatus:
    return RunStatus(
        phase=Phase.TRAINING,
        iteration=iteration,
        training_attempt=attempt,
        stable_version=stable,
        iterations=(IterationRecord(iteration, attempt, T0),),
    )


def in_canary(
    weight: int = 10, iteration: int = 1, version: str = "v2", stable: str | None = "v1"
) -> RunStatus:
    return RunStatus(
        phase=Phase.CANARY,
        iteration=iteration,
        training_attempt=1,
        stable_version=stable,
        canary_version=version,
        canary_step=[10, 50, 100].index(weight),
        canary_weight=weight,
        step_started_at=T0,
        iterations=(IterationRecord(iteration, 1, T0, version=version),),
    )


def idle(iteration: int = 1, finished_minutes: float = 0.0) -> RunStatus:
    return RunStatus(
        phase=Phase.IDLE,
        iteration=iteration,
        training_attempt=1,
        stable_version="v1",
        iteration_finished_at=at(finished_minutes),
    )


def arm(
    labelled: int, passed: int, *, errors: int = 0, p99: float | None = 120.0, extra: int = 0
) -> ArmStats:
    """An arm that served ``labelled + extra`` requests."""
    return ArmStats(
        requests=labelled + extra,
        errors=errors,
        labelled=labelled,
        passed=passed,
        p99_latency_ms=p99,
    )


def traffic(stable: ArmStats, canary: ArmStats, since: datetime = T0) -> CanaryTraffic:
    return CanaryTraffic(since=since, stable=stable, canary=canary)


def seen(minutes: float = 60.0, **kwargs: Any) -> Observations:
    return Observations(now=at(minutes), **kwargs)
