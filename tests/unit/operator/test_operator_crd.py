"""The CRD's OpenAPI schema against control.spec: the sample and parse_spec's own
round trip are accepted, a set of invalid specs is refused (jsonschema, Draft 4: the
OpenAPI v3.0 dialect's boolean exclusiveMinimum/Maximum). CEL rules are only checked by
a real API server (ci/kind-operator.yml)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from codejury.control.spec import parse_spec

ROOT = Path(__file__).resolve().parents[3]
CRD = yaml.safe_load((ROOT / "operators/crds/selftrainingrun.yaml").read_text())
SAMPLE = yaml.safe_load((ROOT / "operators/samples/selftrainingrun.yaml").read_text())
(VERSION,) = CRD["spec"]["versions"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def check(obj: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(obj)


def run(**spec: Any) -> dict[str, Any]:
    base = {"generator": "g", "reward_model_backbone": "b", "datasets": ["mbxp"]}
    return {"spec": {**base, **spec}}


def test_the_crd_names_and_columns() -> None:
    assert CRD["spec"]["group"] == "codejury.io" and VERSION["name"] == "v1alpha1"
    assert CRD["spec"]["scope"] == "Namespaced"
    assert CRD["spec"]["names"]["kind"] == "SelfTrainingRun"
    assert VERSION["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in VERSION["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase" and columns["Traffic"] == ".status.canaryWeight"
    jsonschema.Draft4Validator.check_schema(SCHEMA)


def test_the_sample_is_valid_for_the_schema_and_for_parse_spec() -> None:
    check(SAMPLE)
    parse_spec(SAMPLE["spec"])
    assert SAMPLE["apiVersion"] == "codejury.io/v1alpha1"


def test_a_full_spec_written_by_to_dict_is_accepted() -> None:
    spec = parse_spec(
        {
            **run(iterations="continuous")["spec"],
            "trigger": {"hard_negative_threshold": 50, "schedule_interval_s": 3600},
            "resources": {
                "gpus": 1,
                "node_selector": {"pool": "gpu"},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        }
    )
    data = spec.to_dict()
    # to_dict writes None for unset optionals; manifests leave them out.
    data["resources"]["tolerations"] = [
        {k: v for k, v in t.items() if v is not None} for t in data["resources"]["tolerations"]
    ]
    check({"spec": data})


INVALID = {
    "no generator": lambda s: s.pop("generator"),
    "empty generator": lambda s: s.update(generator=""),
    "no datasets": lambda s: s.update(datasets=[]),
    "evaluation-only dataset": lambda s: s.update(datasets=["multipl-e/humaneval"]),
    "HumanEval_X": lambda s: s.update(datasets=["HumanEval_X"]),
    "zero iterations": lambda s: s.update(iterations=0),
    "iterations word": lambda s: s.update(iterations="forever"),
    "samples above 1024": lambda s: s.update(samples_per_problem=2000),
    "learning rate 0": lambda s: s.update(ppo={"learning_rate": 0}),
    "negative kl": lambda s: s.update(ppo={"kl_coef": -1}),
    "gpus above 64": lambda s: s.update(resources={"gpus": 65}),
    "bad quantity": lambda s: s.update(resources={"memory": "lots"}),
    "toleration operator": lambda s: s.update(resources={"tolerations": [{"operator": "In"}]}),
    "toleration effect": lambda s: s.update(
        resources={"tolerations": [{"key": "k", "effect": "Evict"}]}
    ),
    "one canary step": lambda s: s.update(canary={"steps": [100]}),
    "step above 100": lambda s: s.update(canary={"steps": [10, 150]}),
    "margin 1": lambda s: s.update(canary={"margin": 1}),
    "confidence 0.5": lambda s: s.update(canary={"confidence": 0.5}),
    "latency 0": lambda s: s.update(canary={"max_p99_latency_ms": 0}),
    "empty trigger": lambda s: s.update(iterations="continuous", trigger={}),
    "trigger threshold 0": lambda s: s.update(
        iterations="continuous", trigger={"hard_negative_threshold": 0}
    ),
    "retries above 100": lambda s: s.update(max_training_retries=101),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_the_schema_refuses_invalid_specs(case: str) -> None:
    obj = copy.deepcopy(run())
    INVALID[case](obj["spec"])
    with pytest.raises(jsonschema.ValidationError):
        check(obj)
