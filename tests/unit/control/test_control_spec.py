"""The SelfTrainingRun spec: defaults, round trip, and refusals that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from codejury.control.errors import InvalidSpecError
from codejury.control.spec import (
    CanaryPolicy,
    PPOSettings,
    Resources,
    Toleration,
    TriggerSpec,
    evaluation_only_reason,
    parse_spec,
)
from codejury.core.errors import InvalidArgumentError

from tests.unit.control.control_cases import BASE_SPEC, spec_dict

FULL: dict[str, Any] = {
    "generator": "/models/qwen2.5-coder-7b",
    "reward_model_backbone": "microsoft/unixcoder-base",
    "datasets": ["mbxp", "/data/our-labelled.parquet"],
    "iterations": "continuous",
    "samples_per_problem": 16,
    "ppo": {
        "steps": 400,
        "batch_size": 32,
        "mini_batch_size": 8,
        "learning_rate": 2e-6,
        "kl_coef": 0.1,
        "max_new_tokens": 512,
    },
    "resources": {
        "cpu": "8",
        "memory": "64Gi",
        "gpus": 2,
        "node_selector": {"nvidia.com/gpu.product": "H100"},
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {
                "key": "spot",
                "operator": "Equal",
                "value": "true",
                "effect": "NoExecute",
                "toleration_seconds": 300,
            },
        ],
    },
    "canary": {
        "steps": [5, 25, 50, 100],
        "min_samples": 2000,
        "margin": 0.02,
        "confidence": 0.95,
        "max_error_rate": 0.01,
        "max_p99_latency_ms": 800,
        "probe_rate": 0.5,
    },
    "trigger": {"hard_negative_threshold": 500, "schedule_interval_s": 86400},
    "max_training_retries": 3,
}


def test_a_minimal_spec_takes_the_defaults() -> None:
    spec = parse_spec({"generator": "g", "reward_model_backbone": "b", "datasets": ["mbxp"]})
    assert spec.iterations == 1 and not spec.continuous
    assert spec.canary == CanaryPolicy()
    assert spec.ppo == PPOSettings()
    assert spec.resources == Resources()
    assert spec.trigger is None
    assert spec.max_training_retries == 2


def test_a_full_spec_is_read_as_written() -> None:
    spec = parse_spec(FULL)
    assert spec.continuous
    assert spec.datasets == ("mbxp", "/data/our-labelled.parquet")
    assert spec.canary.steps == (5, 25, 50, 100)
    assert spec.canary.max_p99_latency_ms == 800.0
    assert spec.resources.tolerations[1] == Toleration("spot", "Equal", "true", "NoExecute", 300)
    assert spec.trigger == TriggerSpec(500, 86400.0)


@pytest.mark.parametrize("data", [FULL, BASE_SPEC], ids=["full", "base"])
def test_to_dict_round_trips_through_json(data: dict[str, Any]) -> None:
    spec = parse_spec(data)
    back = parse_spec(json.loads(json.dumps(spec.to_dict())))
    assert back == spec
    assert back.to_dict() == spec.to_dict()


def test_numbers_written_as_cpu_quantities_are_kept_as_text() -> None:
    spec = parse_spec(spec_dict(resources={"cpu": 2, "memory": "512Mi"}))
    assert spec.resources.cpu == "2"
    assert parse_spec(spec.to_dict()) == spec


def _with(path: str, value: Any) -> dict[str, Any]:
    """spec_dict with the dotted ``path`` set to ``value`` (``...`` deletes the key)."""
    data = spec_dict()
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


# (what is wrong, the path set, its value, the message expected, as a regex)
INVALID = [
    (
        "generator missing",
        "generator",
        ...,
        r"^spec\.generator=<missing>: is required; set it \(Generator model",
    ),
    ("empty generator", "generator", " ", r"^spec\.generator=' ': is not a non-empty string"),
    (
        "MultiPL-E for training",
        "datasets",
        ["mbxp", "multipl-e/humaneval"],
        r"^spec\.datasets\[1\]='multipl-e/humaneval': is evaluation-only: .*licence.*; train on "
        r"mbxp",
    ),
    ("HumanEval for training", "datasets", ["HumanEval"], r"^spec\.datasets\[0\]='HumanEval'"),
    (
        "HumanEval-X for training",
        "datasets",
        ["humaneval_x"],
        r"^spec\.datasets\[0\]='humaneval_x': is evaluation-only",
    ),
    ("no dataset", "datasets", [], r"^spec\.datasets=\[\]: is empty; name at least one"),
    (
        "a dataset twice",
        "datasets",
        ["mbxp", "mbxp"],
        r"^spec\.datasets\[1\]='mbxp': is listed twice",
    ),
    ("zero iterations", "iterations", 0, r"^spec\.iterations=0: is neither .* nor 'continuous'"),
    ("iterations as a bool", "iterations", True, r"^spec\.iterations=True"),
    ("unknown iterations word", "iterations", "forever", r"^spec\.iterations='forever'"),
    (
        "samples as text",
        "samples_per_problem",
        "8",
        r"^spec\.samples_per_problem='8': .* in 1\.\.1024",
    ),
    ("negative retries", "max_training_retries", -1, r"^spec\.max_training_retries=-1"),
    (
        "steps not increasing",
        "canary.steps",
        [10, 10, 100],
        r"^spec\.canary\.steps\[1\]=10: is not above the step before it \(10\); list the traffic "
        r"steps in strictly increasing order",
    ),
    (
        "steps not ending at 100",
        "canary.steps",
        [10, 50],
        r"^spec\.canary\.steps\[1\]=50: the last step is not 100; end the steps with 100",
    ),
    (
        "only the promotion step",
        "canary.steps",
        [100],
        r"^spec\.canary\.steps=\[100\]: has no step below 100 .*; add at least one smaller weight",
    ),
    (
        "a zero step",
        "canary.steps",
        [0, 100],
        r"^spec\.canary\.steps\[0\]=0: is not a whole percentage",
    ),
    ("a step above 100", "canary.steps", [50, 150], r"^spec\.canary\.steps\[1\]=150"),
    (
        "steps not a list",
        "canary.steps",
        "10,50,100",
        r"^spec\.canary\.steps='10,50,100': is not a list",
    ),
    (
        "no samples",
        "canary.min_samples",
        0,
        r"^spec\.canary\.min_samples=0: is not a whole number >= 1",
    ),
    (
        "certainty",
        "canary.confidence",
        1.0,
        r"^spec\.canary\.confidence=1\.0: is not a number > 0\.5 and < 1",
    ),
    ("a coin flip", "canary.confidence", 0.5, r"^spec\.canary\.confidence=0\.5"),
    (
        "negative margin",
        "canary.margin",
        -0.1,
        r"^spec\.canary\.margin=-0\.1: is not a number >= 0",
    ),
    ("NaN margin", "canary.margin", float("nan"), r"^spec\.canary\.margin=nan"),
    ("error rate above 1", "canary.max_error_rate", 1.5, r"^spec\.canary\.max_error_rate=1\.5"),
    (
        "zero latency guard",
        "canary.max_p99_latency_ms",
        0,
        r"^spec\.canary\.max_p99_latency_ms=0: .* > 0",
    ),
    ("negative probes", "canary.probe_rate", -1, r"^spec\.canary\.probe_rate=-1"),
    (
        "a typo in the canary",
        "canary.stepz",
        [10, 100],
        r"^spec\.canary\.stepz=\[10, 100\]: is not a field of spec\.canary; remove it, or use one "
        r"of \[.*'steps'",
    ),
    ("an unknown top-level field", "replicas", 3, r"^spec\.replicas=3: is not a field of spec;"),
    (
        "a batch that does not split",
        "ppo.batch_size",
        6,
        r"^spec\.ppo\.batch_size=6: is not a multiple of mini_batch_size=4; set batch_size to a "
        r"multiple of 4",
    ),
    ("no learning", "ppo.learning_rate", 0, r"^spec\.ppo\.learning_rate=0: is not a number > 0"),
    ("ppo not a mapping", "ppo", [1], r"^spec\.ppo=\[1\]: is not a mapping"),
    ("a CPU in words", "resources.cpu", "four", r"^spec\.resources\.cpu='four': is not a positive"),
    ("no memory", "resources.memory", "0Gi", r"^spec\.resources\.memory='0Gi'"),
    ("negative GPUs", "resources.gpus", -1, r"^spec\.resources\.gpus=-1"),
    (
        "labels not a mapping",
        "resources.node_selector",
        ["gpu"],
        r"^spec\.resources\.node_selector=",
    ),
    (
        "an unknown toleration operator",
        "resources.tolerations",
        [{"key": "k", "operator": "Maybe"}],
        r"^spec\.resources\.tolerations\[0\]\.operator='Maybe': is not a known value; use one of",
    ),
    (
        "a value with Exists",
        "resources.tolerations",
        [{"key": "k", "operator": "Exists", "value": "v"}],
        r"^spec\.resources\.tolerations\[0\]\.value='v': is set with operator Exists",
    ),
    (
        "seconds without NoExecute",
        "resources.tolerations",
        [{"key": "k", "value": "v", "toleration_seconds": 5}],
        r"^spec\.resources\.tolerations\[0\]\.toleration_seconds=5: only applies to effect "
        r"NoExecute",
    ),
    (
        "a trigger on a fixed run",
        "trigger",
        {"hard_negative_threshold": 10},
        r"^spec\.trigger=\{.*\}: is only used with iterations 'continuous'.*; remove the trigger",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "match"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_specs_are_refused_naming_the_field(path: str, value: Any, match: str) -> None:
    with pytest.raises(InvalidSpecError, match=match):
        parse_spec(_with(path, value))


CONTINUOUS_INVALID = [
    (None, r"^spec\.trigger=None: is required with iterations 'continuous'; set trigger\."),
    ({}, r"^spec\.trigger=\{\}: names no condition; set hard_negative_threshold"),
    ({"hard_negative_threshold": 0}, r"^spec\.trigger\.hard_negative_threshold=0"),
    ({"schedule_interval_s": -60}, r"^spec\.trigger\.schedule_interval_s=-60"),
    ({"every": "1h"}, r"^spec\.trigger\.every='1h': is not a field of spec\.trigger"),
]


@pytest.mark.parametrize(("trigger", "match"), CONTINUOUS_INVALID)
def test_a_continuous_run_needs_a_trigger_with_a_condition(trigger: Any, match: str) -> None:
    data = spec_dict(iterations="continuous")
    if trigger is not None:
        data["trigger"] = trigger
    with pytest.raises(InvalidSpecError, match=match):
        parse_spec(data)


def test_a_spec_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match=r"^spec=\['generator'\]: is not a mapping"):
        parse_spec(["generator"])


def test_spec_errors_are_permanent_invalid_arguments_with_the_path() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(_with("canary.steps", [10, 5, 100]))
    assert isinstance(caught.value, InvalidArgumentError)
    assert caught.value.path == "spec.canary.steps[1]"


def test_the_evaluation_only_list_matches_the_training_loader() -> None:
    from codejury.evaluation.datasets import Dataset
    from codejury.training.sources import EVALUATION_ONLY

    for dataset in Dataset:
        refused = evaluation_only_reason(dataset.value) is not None
        assert refused == (dataset in EVALUATION_ONLY), dataset
