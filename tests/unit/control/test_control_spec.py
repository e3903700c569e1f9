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

from tests.unit.control.control_cases import BASE_SPEC, GPU_TOLERATIONS, spec_dict

FULL: dict[str, Any] = {
    "generator": "/models/qwen2.5-coder-7b",
    "rewardModelBackbone": "microsoft/unixcoder-base",
    "datasets": ["mbxp", "/data/our-labelled.parquet"],
    "iterations": "continuous",
    "samplesPerProblem": 16,
    "ppo": {
        "steps": 400,
        "batchSize": 32,
        "miniBatchSize": 8,
        "learningRate": 2e-6,
        "klCoef": 0.1,
        "maxNewTokens": 512,
    },
    "resources": {
        "requests": {"cpu": "8", "memory": "64Gi"},
        "limits": {"memory": "80Gi", "nvidia.com/gpu": 2},
    },
    "nodeSelector": {"nvidia.com/gpu.product": "H100"},
    "tolerations": GPU_TOLERATIONS,
    "canary": {
        "steps": [5, 25, 50, 100],
        "minSamples": 2000,
        "margin": 0.02,
        "confidence": 0.95,
        "maxErrorRate": 0.01,
        "maxP99LatencyMilliseconds": 800,
        "probeRate": 0.5,
    },
    "trigger": {"hardNegativeThreshold": 500, "scheduleIntervalSeconds": 86400},
    "maxTrainingRetries": 3,
}


def test_a_minimal_spec_takes_the_defaults() -> None:
    spec = parse_spec({"generator": "g", "rewardModelBackbone": "b", "datasets": ["mbxp"]})
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
    assert spec.tolerations[1] == Toleration(
        key="spot", operator="Equal", value="true", effect="NoExecute", toleration_seconds=300
    )
    assert spec.resources.gpus == 2 and spec.resources.limits["nvidia.com/gpu"] == "2"
    assert spec.trigger == TriggerSpec(hard_negative_threshold=500, schedule_interval_s=86400.0)


def test_the_mapping_form_is_camel_case_only() -> None:
    """One form: the custom resource's. A snake_case key is a typo, refused with the
    field names that exist."""
    with pytest.raises(
        InvalidSpecError,
        match=r"^spec\.samples_per_problem=4: is not a field of "
        r"spec; remove it, or use one of \[.*'samplesPerProblem'",
    ):
        parse_spec(spec_dict(samples_per_problem=4))
    assert "samplesPerProblem" in parse_spec(BASE_SPEC).to_dict()


@pytest.mark.parametrize("data", [FULL, BASE_SPEC], ids=["full", "base"])
def test_to_dict_round_trips_through_json(data: dict[str, Any]) -> None:
    spec = parse_spec(data)
    back = parse_spec(json.loads(json.dumps(spec.to_dict())))
    assert back == spec
    assert back.to_dict() == spec.to_dict()


def test_numbers_written_as_cpu_quantities_are_kept_as_text() -> None:
    spec = parse_spec(spec_dict(resources={"requests": {"cpu": 2, "memory": "512Mi"}}))
    assert spec.resources.requests == {"cpu": "2", "memory": "512Mi"}
    assert spec.resources.gpus == 0
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
    ("blank generator", "generator", " ", r"^spec\.generator=' ': is blank; set it to a name"),
    ("empty generator", "generator", "", r"^spec\.generator='': should have at least 1"),
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
    ("no dataset", "datasets", [], r"^spec\.datasets=\[\]: should have at least 1 item"),
    (
        "a dataset twice",
        "datasets",
        ["mbxp", "mbxp"],
        r"^spec\.datasets=\['mbxp', 'mbxp'\]: lists 'mbxp' twice; list each dataset once",
    ),
    ("zero iterations", "iterations", 0, r"^spec\.iterations=0: is neither .* nor 'continuous'"),
    ("iterations as a bool", "iterations", True, r"^spec\.iterations=True"),
    ("unknown iterations word", "iterations", "forever", r"^spec\.iterations='forever'"),
    (
        "samples as text",
        "samplesPerProblem",
        "8",
        r"^spec\.samplesPerProblem='8': should be a valid integer; .* in 1\.\.1024",
    ),
    ("samples as a bool", "samplesPerProblem", True, r"^spec\.samplesPerProblem=True"),
    (
        "negative retries",
        "maxTrainingRetries",
        -1,
        r"^spec\.maxTrainingRetries=-1: should be greater than or equal to 0",
    ),
    (
        "steps not increasing",
        "canary.steps",
        [10, 10, 100],
        r"^spec\.canary\.steps=\[10, 10, 100\]: step 1 \(10\) is not above the step before it "
        r"\(10\); list the traffic steps in strictly increasing order",
    ),
    (
        "steps not ending at 100",
        "canary.steps",
        [10, 50],
        r"^spec\.canary\.steps=\[10, 50\]: the last step is not 100; end the steps with 100",
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
        r"^spec\.canary\.steps\[0\]=0: should be greater than or equal to 1",
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
        "canary.minSamples",
        0,
        r"^spec\.canary\.minSamples=0: should be greater than or equal to 1; Labelled requests",
    ),
    (
        "certainty",
        "canary.confidence",
        1.0,
        r"^spec\.canary\.confidence=1\.0: should be less than 1; Posterior probability",
    ),
    ("a coin flip", "canary.confidence", 0.5, r"^spec\.canary\.confidence=0\.5: should be greater"),
    (
        "negative margin",
        "canary.margin",
        -0.1,
        r"^spec\.canary\.margin=-0\.1: should be greater than or equal to 0",
    ),
    ("NaN margin", "canary.margin", float("nan"), r"^spec\.canary\.margin=nan: is not a finite"),
    ("error rate above 1", "canary.maxErrorRate", 1.5, r"^spec\.canary\.maxErrorRate=1\.5"),
    (
        "zero latency guard",
        "canary.maxP99LatencyMilliseconds",
        0,
        r"^spec\.canary\.maxP99LatencyMilliseconds=0: should be greater than 0",
    ),
    ("negative probes", "canary.probeRate", -1, r"^spec\.canary\.probeRate=-1"),
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
        "ppo.batchSize",
        6,
        r"^spec\.ppo=\{'batchSize': 6\}: batchSize=6 is not a multiple of miniBatchSize=4; set "
        r"batchSize to a multiple of 4",
    ),
    ("no learning", "ppo.learningRate", 0, r"^spec\.ppo\.learningRate=0: should be greater than 0"),
    ("ppo not a mapping", "ppo", [1], r"^spec\.ppo=\[1\]: is not a mapping"),
    (
        "a CPU in words",
        "resources.requests",
        {"cpu": "four"},
        r"^spec\.resources\.requests\.cpu='four': is not a positive Kubernetes quantity",
    ),
    ("no memory", "resources.requests", {"memory": "0Gi"}, r"^spec\.resources\.requests\.memory"),
    (
        "half a GPU",
        "resources.limits",
        {"nvidia.com/gpu": "500m"},
        r"^spec\.resources\.limits=.*: nvidia\.com/gpu='500m' is not a whole number of GPUs",
    ),
    ("too many GPUs", "resources.limits", {"nvidia.com/gpu": 65}, r"up to 64"),
    (
        "the old resources form",
        "resources.gpus",
        1,
        r"^spec\.resources\.gpus=1: is not a field of spec\.resources; remove it, or use one of "
        r"\['limits', 'requests'\]",
    ),
    ("labels not a mapping", "nodeSelector", ["gpu"], r"^spec\.nodeSelector=\['gpu'\]: is not a"),
    (
        "an unknown toleration operator",
        "tolerations",
        [{"key": "k", "operator": "Maybe"}],
        r"^spec\.tolerations\[0\]\.operator='Maybe': should be 'Exists' or 'Equal'",
    ),
    (
        "a value with Exists",
        "tolerations",
        [{"key": "k", "operator": "Exists", "value": "v"}],
        r"^spec\.tolerations\[0\]=.*: value='v' is set with operator Exists",
    ),
    (
        "no key with Equal",
        "tolerations",
        [{"value": "v"}],
        r"^spec\.tolerations\[0\]=.*: key is empty with operator Equal",
    ),
    (
        "seconds without NoExecute",
        "tolerations",
        [{"key": "k", "value": "v", "tolerationSeconds": 5}],
        r"^spec\.tolerations\[0\]=.*: tolerationSeconds only applies to effect NoExecute",
    ),
    (
        "a trigger on a fixed run",
        "trigger",
        {"hardNegativeThreshold": 10},
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
    ({}, r"^spec\.trigger=\{\}: names no condition; set hardNegativeThreshold"),
    ({"hardNegativeThreshold": 0}, r"^spec\.trigger\.hardNegativeThreshold=0"),
    ({"scheduleIntervalSeconds": -60}, r"^spec\.trigger\.scheduleIntervalSeconds=-60"),
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
    assert caught.value.path == "spec.canary.steps"


def test_the_evaluation_only_list_matches_the_training_loader() -> None:
    from codejury.evaluation.datasets import Dataset
    from codejury.training.sources import EVALUATION_ONLY

    for dataset in Dataset:
        refused = evaluation_only_reason(dataset.value) is not None
        assert refused == (dataset in EVALUATION_ONLY), dataset


def test_the_local_sample_names_only_models_installed_from_wheels() -> None:
    """`codejury run` with the shipped local sample must not reach for the hub (issue 18:
    the cluster sample names hub models, which cannot load offline)."""
    from pathlib import Path

    import yaml
    from codejury.control.training_job import spec_languages
    from codejury.core.settings import load_settings
    from codejury.generation.backends.hf_loading import resolve_source
    from codejury.reranking.backbones import minilm_path

    root = Path(__file__).resolve().parents[3]
    sample = yaml.safe_load((root / "operators/samples/selftrainingrun-local.yaml").read_text())
    spec = parse_spec(sample["spec"])
    settings = load_settings({"generation": {"model": spec.generator}})
    assert resolve_source(settings.generation).kind == "demo"
    assert spec.reward_model_backbone == "minilm" and minilm_path() is not None
    assert spec.iterations == 1 and spec_languages(spec, "cpp") == "python"
