"""The SelfTrainingRun CRD: generated from the models and committed as generated; a
structural schema; the spec and status the code writes are valid for it, and what
``parse_spec`` refuses the schema refuses too (jsonschema, Draft 4: the OpenAPI v3.0
dialect's boolean exclusiveMinimum/Maximum). CEL rules are only checked by a real API
server (ci/kind-operator.yml)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from codejury.cli.app import app
from codejury.control import crd
from codejury.control.errors import InvalidSpecError
from codejury.control.spec import parse_spec
from codejury.control.status import RunStatus
from codejury_operator.conditions import status_patch
from typer.testing import CliRunner

from tests.unit.control.control_cases import idle, in_canary, training

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "charts/codejury/crds/selftrainingrun.yaml"
CRD = yaml.safe_load(CRD_FILE.read_text())
SAMPLE = yaml.safe_load((ROOT / "operators/samples/selftrainingrun.yaml").read_text())
(VERSION,) = CRD["spec"]["versions"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def check(obj: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(obj)


def run(**spec: Any) -> dict[str, Any]:
    base = {"generator": "g", "rewardModelBackbone": "b", "datasets": ["mbxp"]}
    return {"spec": {**base, **spec}}


def test_the_committed_crd_is_what_the_models_generate(tmp_path: Path) -> None:
    assert CRD_FILE.read_text() == crd.crd_yaml()
    assert (ROOT / "operators/crds/selftrainingrun.yaml").resolve() == CRD_FILE.resolve()
    # and the command that checks it says what to run when they differ
    stale = tmp_path / "crd.yaml"
    stale.write_text(CRD_FILE.read_text().replace("minimum: 1", "minimum: 2", 1))
    result = CliRunner().invoke(app, ["deploy", "crd", "--check", "--output", str(stale)])
    assert result.exit_code == 1
    assert "-" in result.stdout and "run `codejury deploy crd`" in result.stderr
    assert CliRunner().invoke(app, ["deploy", "crd", "--check"]).exit_code == 0


def test_the_crd_names_and_columns() -> None:
    assert CRD["spec"]["group"] == "codejury.io" and VERSION["name"] == "v1alpha1"
    assert CRD["spec"]["scope"] == "Namespaced"
    assert CRD["spec"]["names"]["kind"] == "SelfTrainingRun"
    assert VERSION["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in VERSION["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Phase"] == ".status.phase" and columns["Traffic"] == ".status.canaryWeight"
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    # the CRD object itself, against apiextensions.k8s.io/v1 (strict: no unknown keys)
    kubernetes_validate.validate(CRD, "1.30", strict=True)


def _nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{key}")
    for key in ("items", "additionalProperties", "not"):
        yield from _nodes(node.get(key), f"{path}[{key}]")
    for i, branch in enumerate(node.get("anyOf", [])):
        yield from _nodes(branch, f"{path}|{i}")


def test_the_schema_is_structural_and_typed() -> None:
    """What the API server requires of a v1 CRD schema (structural), and what issue 15
    asked: camelCase keys, a typed status (nothing preserved unknown)."""
    for path, node in _nodes(SCHEMA):
        assert "$ref" not in node and "$defs" not in node and "title" not in node, path
        assert "nullable" not in node and "uniqueItems" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        assert node.get("exclusiveMinimum", True) is True, path
        in_branch_or_not = "|" in path.rsplit(".", 1)[-1] or path.endswith("[not]")
        if not in_branch_or_not:
            assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        for key in node.get("properties", {}):
            assert "_" not in key, f"{path}.{key} is not camelCase"


def test_the_sample_is_valid_for_the_schema_and_for_parse_spec() -> None:
    check(SAMPLE)
    parse_spec(SAMPLE["spec"])
    assert SAMPLE["apiVersion"] == "codejury.io/v1alpha1"


def test_a_full_spec_written_by_to_dict_is_accepted() -> None:
    spec = parse_spec(
        {
            **run(iterations="continuous")["spec"],
            "trigger": {"hardNegativeThreshold": 50, "scheduleIntervalSeconds": 3600},
            "resources": {"requests": {"cpu": 2}, "limits": {"nvidia.com/gpu": 1}},
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }
    )
    check({"spec": spec.to_dict()})


def _stored(status: RunStatus) -> dict[str, Any]:
    """The status as the API server holds it after the operator's merge patch."""
    return {k: v for k, v in status_patch(status, 4).items() if v is not None}


@pytest.mark.parametrize(
    "status",
    [RunStatus(), training(2, 2, stable="v1"), in_canary(50), idle()],
    ids=["new", "training", "canary", "idle"],
)
def test_the_status_the_operator_writes_is_valid_for_the_schema(status: RunStatus) -> None:
    check({**run(), "status": _stored(status)})


def test_the_status_schema_refuses_what_from_dict_refuses() -> None:
    for field, value in (("canaryWeight", 150), ("phase", "Dancing"), ("iteration", -1)):
        with pytest.raises(jsonschema.ValidationError):
            check({**run(), "status": {**_stored(in_canary()), field: value}})


Edit = Callable[[dict[str, Any]], object]
INVALID: dict[str, Edit] = {
    "no generator": lambda s: s.pop("generator"),
    "empty generator": lambda s: s.update(generator=""),
    "blank generator": lambda s: s.update(generator="  "),
    "no datasets": lambda s: s.update(datasets=[]),
    "evaluation-only dataset": lambda s: s.update(datasets=["multipl-e/humaneval"]),
    "HumanEval_X": lambda s: s.update(datasets=["HumanEval_X"]),
    "zero iterations": lambda s: s.update(iterations=0),
    "iterations word": lambda s: s.update(iterations="forever"),
    "samples above 1024": lambda s: s.update(samplesPerProblem=2000),
    "learning rate 0": lambda s: s.update(ppo={"learningRate": 0}),
    "negative kl": lambda s: s.update(ppo={"klCoef": -1}),
    "bad quantity": lambda s: s.update(resources={"requests": {"memory": "lots"}}),
    "zero quantity": lambda s: s.update(resources={"limits": {"cpu": 0}}),
    "toleration operator": lambda s: s.update(tolerations=[{"operator": "In"}]),
    "toleration effect": lambda s: s.update(tolerations=[{"key": "k", "effect": "Evict"}]),
    "negative toleration seconds": lambda s: s.update(
        tolerations=[{"key": "k", "effect": "NoExecute", "tolerationSeconds": -1}]
    ),
    "step above 100": lambda s: s.update(canary={"steps": [10, 150]}),
    "margin 1": lambda s: s.update(canary={"margin": 1}),
    "confidence 0.5": lambda s: s.update(canary={"confidence": 0.5}),
    "latency 0": lambda s: s.update(canary={"maxP99LatencyMilliseconds": 0}),
    "empty trigger": lambda s: s.update(iterations="continuous", trigger={}),
    "trigger threshold 0": lambda s: s.update(
        iterations="continuous", trigger={"hardNegativeThreshold": 0}
    ),
    "retries above 100": lambda s: s.update(maxTrainingRetries=101),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_the_schema_and_parse_spec_refuse_the_same_specs(case: str) -> None:
    obj = copy.deepcopy(run())
    INVALID[case](obj["spec"])
    with pytest.raises(jsonschema.ValidationError):
        check(obj)
    with pytest.raises(InvalidSpecError):
        parse_spec(obj["spec"])


def test_defaults_in_the_schema_are_the_models_defaults() -> None:
    """The API server fills in the schema's defaults: they must be what parse_spec would
    take for an absent field, or a stored run would differ from the one applied."""
    spec = SCHEMA["properties"]["spec"]["properties"]
    defaults = parse_spec(run()["spec"]).to_dict()
    assert spec["samplesPerProblem"]["default"] == defaults["samplesPerProblem"]
    for group in ("ppo", "canary"):
        for key, node in spec[group]["properties"].items():
            if "default" in node:
                assert node["default"] == defaults[group][key], f"{group}.{key}"
    assert spec["canary"]["properties"]["steps"]["default"] == [10, 50, 100]
