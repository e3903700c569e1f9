"""``SelfTrainingRunSpec``: what a self-training run is asked to do, read and checked once.

The spec is written once, here, as pydantic models: the fields, their bounds and their
descriptions are what ``parse_spec`` checks and what ``control.crd`` turns into the
SelfTrainingRun CRD's OpenAPI schema (a test keeps the committed CRD equal to it). Rules
across fields are model validators here and CEL rules (``x-kubernetes-validations``) in the
CRD, written next to each other so they cannot drift apart unseen.

The mapping form is the custom resource's: camelCase keys (``samplesPerProblem``), core
Kubernetes types for ``resources`` (a ``ResourceRequirements``), ``nodeSelector`` and
``tolerations``. ``parse_spec`` reads only that form and raises ``InvalidSpecError`` naming
the field path (``spec.canary.steps``), the value and the fix; unknown keys are refused, so
a typo is an error rather than a default. ``SelfTrainingRunSpec.to_dict`` gives the mapping
back (``parse_spec`` of it is equal to the spec). In Python the fields keep their snake_case
names (``spec.canary.min_samples``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from codejury.control.errors import InvalidSpecError
from codejury.core.ppo_defaults import PPO_DEFAULTS

CONTINUOUS = "continuous"

#: Datasets that may only be evaluated on, by normalized name (lower case, letters and
#: digits only), and why. The training loader refuses the same three
#: (``codejury.training.sources.EVALUATION_ONLY``); a test keeps the two lists in step.
EVALUATION_ONLY_DATASETS: dict[str, str] = {
    "multiple": "MultiPL-E's licence forbids training on it; it is the evaluation set",
    "humaneval": "MultiPL-E, the evaluation set, translates it: training on it leaks the "
    "evaluation problems",
    "humanevalx": "it translates HumanEval, the problems of MultiPL-E (the evaluation set): "
    "training on it leaks the evaluation problems",
    "evalplus": "EvalPlus's HumanEval+ and MBPP+ are evaluation sets: training on them leaks "
    "the evaluation problems",
}
#: The same names as a schema pattern, so the API server refuses them at ``kubectl apply``.
_EVALUATION_ONLY_PATTERN = r"(?i)^\s*(multipl-?e|human-?eval([-_]?x)?|eval-?plus)(/.*)?$"

TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")
GPU_RESOURCE = "nvidia.com/gpu"
MAX_GPUS = 64

# A Kubernetes resource quantity such as "500m", "4", "16Gi" (positive, no exponent form).
_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _fail(problem: str, fix: str) -> PydanticCustomError:
    """A rule's error; ``parse_spec`` turns it into ``<path>=<value>: problem; fix``."""
    return PydanticCustomError("spec", "{problem}; {fix}", {"problem": problem, "fix": fix})


def _quantity(value: object) -> str:
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if (
        not isinstance(text, str)
        or not _QUANTITY.match(text)
        or float(re.sub(r"[a-zA-Z]+$", "", text)) <= 0
    ):
        raise _fail(
            "is not a positive Kubernetes quantity",
            "write it like '4', '500m' (CPU) or '16Gi' (memory)",
        )
    return text


def _iterations(value: object) -> int | Literal["continuous"]:
    if value == CONTINUOUS:
        return "continuous"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise _fail(
        "is neither a whole number >= 1 nor 'continuous'",
        "set a number of iterations such as 3, or 'continuous' with a spec.trigger",
    )


def evaluation_only_reason(dataset: str) -> str | None:
    """Why ``dataset`` may not be trained on, or None when it may ('multipl-e/humaneval',
    'HumanEval_X' and 'humaneval-x/cpp' are all recognised)."""
    head = dataset.strip().split("/", 1)[0]
    return EVALUATION_ONLY_DATASETS.get(re.sub(r"[^a-z0-9]", "", head.lower()))


def _training_dataset(name: str) -> str:
    reason = evaluation_only_reason(name)
    if reason is not None:
        raise _fail(
            f"is evaluation-only: {reason}",
            "train on mbxp or your own labelled data and keep this dataset for evaluation",
        )
    return name


# Types of the fields. Whole numbers are strict (True and "8" are not 8); numbers refuse
# NaN and infinity. Each carries its own schema where pydantic's would not be a Kubernetes
# structural schema (int-or-string).
Whole = Annotated[int, Field(strict=True)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def _not_blank(name: str) -> str:
    if not name.strip():
        raise _fail("is blank", "set it to a name")
    return name


Name = Annotated[
    str,
    Field(strict=True, min_length=1, json_schema_extra={"pattern": r"\S"}),
    AfterValidator(_not_blank),
]
Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": _QUANTITY.pattern},
            ],
        }
    ),
]
Iterations = Annotated[
    int | Literal["continuous"],
    BeforeValidator(_iterations),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": [CONTINUOUS]}],
        }
    ),
]
Dataset = Annotated[
    str,
    Field(
        strict=True, min_length=1, json_schema_extra={"not": {"pattern": _EVALUATION_ONLY_PATTERN}}
    ),
    AfterValidator(_training_dataset),
]
Percent = Annotated[int, Field(strict=True, ge=1, le=100)]


class SpecModel(BaseModel):
    """A part of the spec: frozen, camelCase in its mapping form, unknown keys refused.
    Python code builds it by field name (``CanaryPolicy(min_samples=100)``)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
    )


class PPOSettings(SpecModel):
    """The generator's PPO hyperparameters for each iteration (a subset of ``PPOConfig``;
    defaults from ``core.ppo_defaults``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.batchSize) || !has(self.miniBatchSize) || "
                    "self.batchSize % self.miniBatchSize == 0",
                    "message": "batchSize must be a multiple of miniBatchSize",
                }
            ]
        }
    )

    steps: Whole = Field(PPO_DEFAULTS.steps, ge=1, description="PPO steps per iteration (>= 1).")
    batch_size: Whole = Field(
        PPO_DEFAULTS.batch_size, ge=1, description="Completions sampled per step (>= 1)."
    )
    mini_batch_size: Whole = Field(
        PPO_DEFAULTS.mini_batch_size,
        ge=1,
        description="Completions per forward/backward pass; divides batchSize.",
    )
    learning_rate: Number = Field(
        PPO_DEFAULTS.learning_rate, gt=0, le=1, description="Adam learning rate, in (0, 1]."
    )
    kl_coef: Number = Field(
        PPO_DEFAULTS.init_kl_coef, ge=0, description="Initial coefficient of the KL penalty (>= 0)."
    )
    max_new_tokens: Whole = Field(
        PPO_DEFAULTS.max_new_tokens, ge=1, description="Tokens sampled per completion (>= 1)."
    )

    @model_validator(mode="after")
    def _mini_batches_divide_the_batch(self) -> PPOSettings:
        if self.batch_size % self.mini_batch_size:
            raise _fail(
                f"batchSize={self.batch_size} is not a multiple of "
                f"miniBatchSize={self.mini_batch_size}",
                f"set batchSize to a multiple of {self.mini_batch_size}",
            )
        return self


class Toleration(SpecModel):
    """A core ``v1.Toleration`` for the training Job's pod."""

    key: str = Field("", strict=True, description="Taint key; empty with operator Exists.")
    operator: Literal["Exists", "Equal"] = Field(
        "Equal", description="Equal: match key and value; Exists: key only."
    )
    value: str = Field("", strict=True, description="Taint value (operator Equal only).")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        "", description="NoSchedule, PreferNoSchedule, NoExecute; empty: all effects."
    )
    toleration_seconds: Whole | None = Field(
        None, ge=0, description="NoExecute only: how long the pod stays once tainted."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise _fail(
                f"value={self.value!r} is set with operator Exists", "drop the value or use Equal"
            )
        if self.operator == "Equal" and not self.key:
            raise _fail("key is empty with operator Equal", "name the taint key or use Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise _fail(
                f"tolerationSeconds only applies to effect NoExecute, not {self.effect!r}",
                "drop tolerationSeconds or set effect: NoExecute",
            )
        return self


class Resources(SpecModel):
    """A core ``v1.ResourceRequirements`` for each training Job. The memory limit defaults
    to the memory request (a Job that swaps is slower than one the kernel stops); GPUs are
    ``nvidia.com/gpu`` in ``limits``. The local runtime reads only the GPUs."""

    requests: dict[str, Quantity] = Field(
        default_factory=lambda: {"cpu": "4", "memory": "16Gi"},
        description="Resources the Job's pod is scheduled with: cpu ('4', '500m'), memory "
        "('16Gi').",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        description=f"Resource limits; {GPU_RESOURCE}: GPUs per Job, a whole number up to "
        f"{MAX_GPUS}.",
    )

    @field_validator("limits", "requests")
    @classmethod
    def _whole_gpus(cls, value: dict[str, str]) -> dict[str, str]:
        gpus = value.get(GPU_RESOURCE)
        if gpus is not None and (not gpus.isdigit() or int(gpus) > MAX_GPUS):
            raise _fail(
                f"{GPU_RESOURCE}={gpus!r} is not a whole number of GPUs up to {MAX_GPUS}",
                f"ask for whole GPUs, e.g. {GPU_RESOURCE}: 1",
            )
        return value

    @property
    def gpus(self) -> int:
        """GPUs per Job (Kubernetes requires limits to hold them; requests may repeat them)."""
        return int(self.limits.get(GPU_RESOURCE) or self.requests.get(GPU_RESOURCE) or 0)


class CanaryPolicy(SpecModel):
    """How a new reranker version earns its traffic; the rule is in ``control.canary``."""

    steps: tuple[Percent, ...] = Field(
        (10, 50, 100),
        description="Canary traffic percentages, strictly increasing, ending at 100; the "
        "canary is analysed at each step below 100 and reaching 100 is the promotion.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "size(self) >= 2 && self[size(self) - 1] == 100",
                    "message": "end the steps with 100 (the promotion), after at least one "
                    "smaller step",
                },
                {
                    "rule": "self.isSorted() && self.all(x, self.exists_one(y, y == x))",
                    "message": "the steps must be strictly increasing, e.g. [10, 50, 100]",
                },
            ]
        },
    )
    min_samples: Whole = Field(
        1000,
        ge=1,
        description="Labelled requests (requests with tests) each arm needs at a step before "
        "the pass rates are compared; also the requests the canary needs before the error "
        "and latency guards apply. See docs/control.md for the power it gives.",
    )
    margin: Number = Field(
        0.05,
        ge=0,
        lt=1,
        description="Non-inferiority margin, in pass rate: the canary passes when it is "
        "credibly no worse than stable minus this, in [0, 1).",
    )
    confidence: Number = Field(
        0.9,
        gt=0.5,
        lt=1,
        description="Posterior probability P(p_canary >= p_stable - margin) needed to pass, "
        "in (0.5, 1).",
    )
    max_error_rate: Number = Field(
        0.05,
        ge=0,
        le=1,
        description="Canary requests that errored, as a fraction, above which it fails.",
    )
    max_p99_latency_ms: Number = Field(
        2000.0,
        gt=0,
        alias="maxP99LatencyMilliseconds",
        description="Canary p99 latency, in milliseconds, above which it fails.",
    )
    probe_rate: Number = Field(
        0.0,
        ge=0,
        description="Probe requests per second the runtime sends to each arm: problems that "
        "carry tests, so both arms collect labelled requests when users send few tests; 0 "
        "disables.",
    )

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                raise _fail(
                    f"step {i} ({steps[i]}) is not above the step before it ({steps[i - 1]})",
                    "list the traffic steps in strictly increasing order, e.g. [10, 50, 100]",
                )
        if not steps or steps[-1] != 100:
            raise _fail(
                "the last step is not 100", "end the steps with 100: reaching 100% is the promotion"
            )
        if len(steps) == 1:
            raise _fail(
                "has no step below 100 to measure the canary at",
                "add at least one smaller weight before 100, e.g. [10, 50, 100]",
            )
        return steps


class TriggerSpec(SpecModel):
    """When a continuous run starts its next iteration; either condition fires it."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    hard_negative_threshold: Whole | None = Field(
        None, ge=1, description="Start when at least this many new hard negatives were stored."
    )
    schedule_interval_s: Number | None = Field(
        None,
        gt=0,
        alias="scheduleIntervalSeconds",
        description="Start when this many seconds passed since the last iteration ended.",
    )

    @model_validator(mode="after")
    def _a_condition(self) -> TriggerSpec:
        if self.hard_negative_threshold is None and self.schedule_interval_s is None:
            raise _fail(
                "names no condition", "set hardNegativeThreshold, scheduleIntervalSeconds, or both"
            )
        return self


class SelfTrainingRunSpec(SpecModel):
    """A self-training run: what to train, on what, how often, and how to roll it out."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "string(self.iterations) != 'continuous' || has(self.trigger)",
                    "message": "trigger is required with iterations 'continuous'",
                },
                {
                    "rule": "!has(self.trigger) || string(self.iterations) == 'continuous'",
                    "message": "trigger is only used with iterations 'continuous'",
                },
            ]
        }
    )

    generator: Name = Field(description="Generator model: a local path or a hub name.")
    reward_model_backbone: Name = Field(
        description="Backbone the reranker's reward model is trained from."
    )
    datasets: tuple[Dataset, ...] = Field(
        min_length=1,
        description="Training datasets (e.g. 'mbxp', 'mbxp/python'); MultiPL-E, HumanEval "
        "and HumanEval-X are evaluation-only and refused.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    iterations: Iterations = Field(
        1,
        description="Iterations to run (>= 1), back to back; or 'continuous': one iteration "
        "now, then one each time the trigger fires.",
    )
    samples_per_problem: Whole = Field(
        8, ge=1, le=1024, description="Candidates sampled per problem (N), in 1..1024."
    )
    ppo: PPOSettings = Field(default_factory=PPOSettings, description="PPO settings.")
    resources: Resources = Field(
        default_factory=Resources, description="What each training Job asks for."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the training Job's pod must match."
    )
    tolerations: tuple[Toleration, ...] = Field(
        (), description="Taints the training Job's pod tolerates."
    )
    canary: CanaryPolicy = Field(
        default_factory=CanaryPolicy, description="The canary rollout and its rule."
    )
    trigger: TriggerSpec | None = Field(
        None,
        validate_default=True,  # its absence is checked too
        description="Required with iterations 'continuous', refused otherwise.",
    )
    max_training_retries: Whole = Field(
        2,
        ge=0,
        le=100,
        description="Failed training Jobs retried per iteration before the run fails.",
    )

    @field_validator("datasets")
    @classmethod
    def _each_once(cls, datasets: tuple[str, ...]) -> tuple[str, ...]:
        twice = sorted({d for d in datasets if datasets.count(d) > 1})
        if twice:
            raise _fail(f"lists {twice[0]!r} twice", "list each dataset once")
        return datasets

    @field_validator("trigger")
    @classmethod
    def _trigger_with_continuous(
        cls, trigger: TriggerSpec | None, info: ValidationInfo
    ) -> TriggerSpec | None:
        if "iterations" not in info.data:  # refused already
            return trigger
        continuous = info.data["iterations"] == CONTINUOUS
        if continuous and trigger is None:
            raise _fail(
                "is required with iterations 'continuous'",
                "set trigger.hardNegativeThreshold and/or trigger.scheduleIntervalSeconds",
            )
        if not continuous and trigger is not None:
            raise _fail(
                "is only used with iterations 'continuous' (fixed iterations run back to back)",
                "remove the trigger or set iterations: continuous",
            )
        return trigger

    @property
    def continuous(self) -> bool:
        return self.iterations == CONTINUOUS

    def to_dict(self) -> dict[str, Any]:
        """The spec's mapping form (camelCase, unset optionals left out); ``parse_spec`` of
        it equals this spec."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_spec(data: object, path: str = "spec") -> SelfTrainingRunSpec:
    """Read and check a spec mapping; ``InvalidSpecError`` names the first wrong field."""
    if not isinstance(data, Mapping):
        raise InvalidSpecError(
            path, data, "is not a mapping", f"write {path} as a mapping of field: value"
        )
    try:
        return SelfTrainingRunSpec.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise spec_error(exc, path) from None


def spec_error(exc: ValidationError, path: str) -> InvalidSpecError:
    """The first of pydantic's errors as an ``InvalidSpecError``: the field path in the
    mapping's own names, the value, what is wrong and the fix."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = first["loc"]
    where = field_path(path, loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    owner, name = _field_owner(loc)
    kind = first["type"]
    value = first.get("input")
    if kind == "missing":
        help_text = _description(owner, name).rstrip(".")
        return InvalidSpecError(where, _MISSING, "is required" + more, f"set it ({help_text})")
    if kind == "extra_forbidden":
        parent = where.rsplit(".", 1)[0]
        names = sorted(f.alias or n for n, f in owner.model_fields.items()) if owner else []
        return InvalidSpecError(
            where, value, f"is not a field of {parent}" + more, f"remove it, or use one of {names}"
        )
    if kind == "spec":
        ctx = first.get("ctx") or {}
        return InvalidSpecError(where, value, str(ctx["problem"]) + more, str(ctx["fix"]))
    if kind in ("model_type", "dict_type"):
        return InvalidSpecError(
            where, value, "is not a mapping" + more, f"write {where} as a mapping of field: value"
        )
    if kind in ("tuple_type", "list_type"):
        return InvalidSpecError(where, value, "is not a list" + more, "write it as a list")
    if isinstance(value, float) and not math.isfinite(value):
        problem = "is not a finite number"
    else:
        problem = pydantic_problem(first["msg"])
    help_text = _description(owner, name) or "see docs/control.md"
    return InvalidSpecError(where, value, problem + more, help_text.rstrip("."))


def field_path(path: str, loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as the mapping's path: ``spec.tolerations[0].key``."""
    return path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def pydantic_problem(message: str) -> str:
    """pydantic's message as the predicate of ``<path>=<value>: ...``: "Input should be
    greater than 0" and "String should have at least 1 character" lose their subject."""
    return re.sub(r"^(Input|String|Tuple|List|Dictionary|Value) (?=should )", "", message)


class _Missing:
    """Stands for an absent key in error messages."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _field_owner(loc: tuple[int | str, ...]) -> tuple[type[SpecModel] | None, str | None]:
    """The model that holds the field at ``loc`` (aliases, list indexes skipped), and the
    field's Python name; (None, None) where ``loc`` leaves the models."""
    model: type[SpecModel] | None = SelfTrainingRunSpec
    name: str | None = None
    for i, part in enumerate(loc):
        if isinstance(part, int) or model is None:
            continue
        name = next((n for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if name is None:
            return model, None
        if i == len(loc) - 1:
            return model, name
        model = _nested_model(model.model_fields[name].annotation)
    return model, name


def _nested_model(annotation: Any) -> type[SpecModel] | None:
    """The spec model in a field's type (``CanaryPolicy``, ``tuple[Toleration, ...]``,
    ``TriggerSpec | None``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, SpecModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _description(owner: type[SpecModel] | None, name: str | None) -> str:
    if owner is None or name is None:
        return ""
    return owner.model_fields[name].description or ""
