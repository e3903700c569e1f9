"""``SelfTrainingRunSpec``: what a self-training run is asked to do, read and checked once.

``parse_spec`` turns a plain mapping (a CR's ``spec``, a YAML file) into frozen
dataclasses, or raises ``InvalidSpecError`` naming the field path (``spec.canary.steps[1]``),
the value and the fix. Unknown keys are refused, so a typo is an error rather than a
default. ``SelfTrainingRunSpec.to_dict`` gives the mapping back (``parse_spec`` of it is
equal to the spec): the operator stores it in the custom resource.

Build specs through ``parse_spec``: the dataclasses do not re-check themselves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from codejury.control.errors import InvalidSpecError
from codejury.control.reading import SpecReader, as_lists, is_whole, read_text
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
}

TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class PPOSettings:
    """The generator's PPO hyperparameters for each iteration (a subset of ``PPOConfig``;
    defaults from ``core.ppo_defaults``)."""

    steps: int = field(
        default=PPO_DEFAULTS.steps, metadata={"help": "PPO steps per iteration (>= 1)."}
    )
    batch_size: int = field(
        default=PPO_DEFAULTS.batch_size, metadata={"help": "Completions sampled per step (>= 1)."}
    )
    mini_batch_size: int = field(
        default=PPO_DEFAULTS.mini_batch_size,
        metadata={"help": "Completions per forward/backward pass; divides batch_size."},
    )
    learning_rate: float = field(
        default=PPO_DEFAULTS.learning_rate, metadata={"help": "Adam learning rate, in (0, 1]."}
    )
    kl_coef: float = field(
        default=PPO_DEFAULTS.init_kl_coef,
        metadata={"help": "Initial coefficient of the KL penalty (>= 0)."},
    )
    max_new_tokens: int = field(
        default=PPO_DEFAULTS.max_new_tokens,
        metadata={"help": "Tokens sampled per completion (>= 1)."},
    )


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration for the training Job's pod, kept as data for the operator."""

    key: str = field(default="", metadata={"help": "Taint key; empty with operator Exists."})
    operator: Literal["Exists", "Equal"] = field(
        default="Equal", metadata={"help": "Equal: match key and value; Exists: key only."}
    )
    value: str = field(default="", metadata={"help": "Taint value (operator Equal only)."})
    effect: str = field(
        default="",
        metadata={"help": "NoSchedule, PreferNoSchedule, NoExecute; empty: all effects."},
    )
    toleration_seconds: int | None = field(
        default=None, metadata={"help": "NoExecute only: how long the pod stays once tainted."}
    )


@dataclass(frozen=True)
class Resources:
    """What one training Job asks for; the local runtime ignores all but ``gpus``."""

    cpu: str = field(default="4", metadata={"help": "CPU request, a quantity: '4', '500m'."})
    memory: str = field(
        default="16Gi", metadata={"help": "Memory request, a quantity: '16Gi', '512Mi'."}
    )
    gpus: int = field(default=0, metadata={"help": "GPUs (nvidia.com/gpu) per Job (>= 0)."})
    node_selector: dict[str, str] = field(
        default_factory=dict, metadata={"help": "Node labels the Job's pod must match."}
    )
    tolerations: tuple[Toleration, ...] = field(
        default=(), metadata={"help": "Taints the Job's pod tolerates."}
    )


@dataclass(frozen=True)
class CanaryPolicy:
    """How a new reranker version earns its traffic; the rule is in ``control.canary``."""

    steps: tuple[int, ...] = field(
        default=(10, 50, 100),
        metadata={
            "help": "Canary traffic percentages, strictly increasing, ending at 100; the "
            "canary is analysed at each step below 100 and reaching 100 is the promotion."
        },
    )
    min_samples: int = field(
        default=1000,
        metadata={
            "help": "Labelled requests (requests with tests) each arm needs at a step before "
            "the pass rates are compared; also the requests the canary needs before the "
            "error and latency guards apply. See docs/control.md for the power it gives."
        },
    )
    margin: float = field(
        default=0.05,
        metadata={
            "help": "Non-inferiority margin, in pass rate: the canary passes when it is "
            "credibly no worse than stable minus this, in [0, 1)."
        },
    )
    confidence: float = field(
        default=0.9,
        metadata={
            "help": "Posterior probability P(p_canary >= p_stable - margin) needed to pass, "
            "in (0.5, 1)."
        },
    )
    max_error_rate: float = field(
        default=0.05,
        metadata={"help": "Canary requests that errored, as a fraction, above which it fails."},
    )
    max_p99_latency_ms: float = field(
        default=2000.0, metadata={"help": "Canary p99 latency, in ms, above which it fails."}
    )
    probe_rate: float = field(
        default=0.0,
        metadata={
            "help": "Probe requests per second the runtime sends to each arm: problems "
            "that carry tests, so both arms collect labelled requests when users send few "
            "tests; 0 disables."
        },
    )


@dataclass(frozen=True)
class TriggerSpec:
    """When a continuous run starts its next iteration; either condition fires it."""

    hard_negative_threshold: int | None = field(
        default=None,
        metadata={"help": "Start when at least this many new hard negatives were stored."},
    )
    schedule_interval_s: float | None = field(
        default=None,
        metadata={"help": "Start when this many seconds passed since the last iteration ended."},
    )


@dataclass(frozen=True)
class SelfTrainingRunSpec:
    """A self-training run: what to train, on what, how often, and how to roll it out."""

    generator: str = field(metadata={"help": "Generator model: a local path or a hub name."})
    reward_model_backbone: str = field(
        metadata={"help": "Backbone the reranker's reward model is trained from."}
    )
    datasets: tuple[str, ...] = field(
        metadata={
            "help": "Training datasets (e.g. 'mbxp'); MultiPL-E, HumanEval and HumanEval-X "
            "are evaluation-only and refused."
        }
    )
    iterations: int | Literal["continuous"] = field(
        default=1,
        metadata={
            "help": "Iterations to run (>= 1), back to back; or 'continuous': one "
            "iteration now, then one each time the trigger fires."
        },
    )
    samples_per_problem: int = field(
        default=8, metadata={"help": "Candidates sampled per problem (N), in 1..1024."}
    )
    ppo: PPOSettings = field(default_factory=PPOSettings, metadata={"help": "PPO settings."})
    resources: Resources = field(
        default_factory=Resources, metadata={"help": "What each training Job asks for."}
    )
    canary: CanaryPolicy = field(
        default_factory=CanaryPolicy, metadata={"help": "The canary rollout and its rule."}
    )
    trigger: TriggerSpec | None = field(
        default=None,
        metadata={"help": "Required with iterations 'continuous', refused otherwise."},
    )
    max_training_retries: int = field(
        default=2,
        metadata={"help": "Failed training Jobs retried per iteration before the run fails."},
    )

    @property
    def continuous(self) -> bool:
        return self.iterations == CONTINUOUS

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-able values; ``parse_spec`` of it equals this spec."""
        return {key: as_lists(value) for key, value in asdict(self).items()}


def parse_spec(data: object, path: str = "spec") -> SelfTrainingRunSpec:
    """Read and check a spec mapping; ``InvalidSpecError`` names the first wrong field."""
    r = SpecReader(data, path, SelfTrainingRunSpec)
    generator = r.text("generator")
    backbone = r.text("reward_model_backbone")
    datasets = _datasets(r)
    iterations = _iterations(r)
    samples = r.integer("samples_per_problem", minimum=1, maximum=1024)
    ppo = _ppo(r.sub("ppo", PPOSettings))
    resources = _resources(r.sub("resources", Resources))
    canary = _canary(r.sub("canary", CanaryPolicy))
    trigger = _trigger(r, continuous=iterations == CONTINUOUS)
    retries = r.integer("max_training_retries", minimum=0, maximum=100)
    r.done()
    return SelfTrainingRunSpec(
        generator=generator,
        reward_model_backbone=backbone,
        datasets=datasets,
        iterations=iterations,
        samples_per_problem=samples,
        ppo=ppo,
        resources=resources,
        canary=canary,
        trigger=trigger,
        max_training_retries=retries,
    )


def evaluation_only_reason(dataset: str) -> str | None:
    """Why ``dataset`` may not be trained on, or None when it may ('multipl-e/humaneval',
    'HumanEval_X' and 'humaneval-x/cpp' are all recognised)."""
    head = dataset.strip().split("/", 1)[0]
    return EVALUATION_ONLY_DATASETS.get(re.sub(r"[^a-z0-9]", "", head.lower()))


def _datasets(r: SpecReader) -> tuple[str, ...]:
    path = r.path("datasets")
    items = r.sequence("datasets")
    if not items:
        raise InvalidSpecError(path, [], "is empty", "name at least one training dataset: mbxp")
    names: list[str] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        name = read_text(item, where)
        reason = evaluation_only_reason(name)
        if reason is not None:
            raise InvalidSpecError(
                where,
                item,
                f"is evaluation-only: {reason}",
                "train on mbxp or your own labelled data and keep this dataset for evaluation",
            )
        if name in names:
            raise InvalidSpecError(where, item, "is listed twice", "list each dataset once")
        names.append(name)
    return tuple(names)


def _iterations(r: SpecReader) -> int | Literal["continuous"]:
    value = r.get("iterations")
    if value == CONTINUOUS:
        return "continuous"
    if is_whole(value) and value >= 1:
        return int(value)
    raise InvalidSpecError(
        r.path("iterations"),
        value,
        "is neither a whole number >= 1 nor 'continuous'",
        "set a number of iterations such as 3, or 'continuous' with a spec.trigger",
    )


def _ppo(r: SpecReader) -> PPOSettings:
    settings = PPOSettings(
        steps=r.integer("steps", minimum=1),
        batch_size=r.integer("batch_size", minimum=1),
        mini_batch_size=r.integer("mini_batch_size", minimum=1),
        learning_rate=r.number("learning_rate", minimum=0.0, maximum=1.0, exclusive_min=True),
        kl_coef=r.number("kl_coef", minimum=0.0),
        max_new_tokens=r.integer("max_new_tokens", minimum=1),
    )
    r.done()
    if settings.batch_size % settings.mini_batch_size:
        raise InvalidSpecError(
            r.path("batch_size"),
            settings.batch_size,
            f"is not a multiple of mini_batch_size={settings.mini_batch_size}",
            f"set batch_size to a multiple of {settings.mini_batch_size}",
        )
    return settings


def _resources(r: SpecReader) -> Resources:
    cpu = r.quantity("cpu")
    memory = r.quantity("memory")
    gpus = r.integer("gpus", minimum=0, maximum=64)
    selector_path = r.path("node_selector")
    selector = r.get("node_selector")
    if not isinstance(selector, Mapping):
        raise InvalidSpecError(
            selector_path, selector, "is not a mapping", "write node labels as label: value"
        )
    node_selector = {
        read_text(k, f"{selector_path} key"): read_text(v, f"{selector_path}.{k}")
        for k, v in selector.items()
    }
    tolerations = tuple(
        _toleration(SpecReader(item, f"{r.path('tolerations')}[{i}]", Toleration))
        for i, item in enumerate(r.sequence("tolerations"))
    )
    r.done()
    return Resources(cpu, memory, gpus, node_selector, tolerations)


def _toleration(r: SpecReader) -> Toleration:
    key = r.text("key", allow_empty=True)
    operator = r.choice("operator", ("Exists", "Equal"))
    value = r.text("value", allow_empty=True)
    effect = r.choice("effect", TOLERATION_EFFECTS)
    seconds_value = r.get("toleration_seconds")
    seconds = None if seconds_value is None else r.integer("toleration_seconds", minimum=0)
    r.done()
    if operator == "Exists" and value:
        raise InvalidSpecError(
            r.path("value"), value, "is set with operator Exists", "drop the value or use Equal"
        )
    if operator == "Equal" and not key:
        raise InvalidSpecError(
            r.path("key"), key, "is empty with operator Equal", "name the taint key or use Exists"
        )
    if seconds is not None and effect != "NoExecute":
        raise InvalidSpecError(
            r.path("toleration_seconds"),
            seconds,
            f"only applies to effect NoExecute, not {effect!r}",
            "drop toleration_seconds or set effect: NoExecute",
        )
    return Toleration(key, cast(Literal["Exists", "Equal"], operator), value, effect, seconds)


def _canary(r: SpecReader) -> CanaryPolicy:
    steps = _steps(r)
    policy = CanaryPolicy(
        steps=steps,
        min_samples=r.integer("min_samples", minimum=1),
        margin=r.number("margin", minimum=0.0, maximum=1.0, exclusive_max=True),
        confidence=r.number(
            "confidence", minimum=0.5, maximum=1.0, exclusive_min=True, exclusive_max=True
        ),
        max_error_rate=r.number("max_error_rate", minimum=0.0, maximum=1.0),
        max_p99_latency_ms=r.number("max_p99_latency_ms", minimum=0.0, exclusive_min=True),
        probe_rate=r.number("probe_rate", minimum=0.0),
    )
    r.done()
    return policy


def _steps(r: SpecReader) -> tuple[int, ...]:
    path = r.path("steps")
    items = r.sequence("steps")
    steps: list[int] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not is_whole(item) or not 1 <= item <= 100:
            raise InvalidSpecError(
                where, item, "is not a whole percentage in 1..100", "use weights like 10, 50, 100"
            )
        if steps and item <= steps[-1]:
            raise InvalidSpecError(
                where,
                item,
                f"is not above the step before it ({steps[-1]})",
                "list the traffic steps in strictly increasing order, e.g. [10, 50, 100]",
            )
        steps.append(item)
    if not steps or steps[-1] != 100:
        where = f"{path}[{len(steps) - 1}]" if steps else path
        raise InvalidSpecError(
            where,
            steps[-1] if steps else [],
            "the last step is not 100",
            "end the steps with 100: reaching 100% is the promotion",
        )
    if len(steps) == 1:
        raise InvalidSpecError(
            path,
            steps,
            "has no step below 100 to measure the canary at",
            "add at least one smaller weight before 100, e.g. [10, 50, 100]",
        )
    return tuple(steps)


def _trigger(r: SpecReader, *, continuous: bool) -> TriggerSpec | None:
    path = r.path("trigger")
    value = r.get("trigger")
    if value is None:
        if continuous:
            raise InvalidSpecError(
                path,
                None,
                "is required with iterations 'continuous'",
                "set trigger.hard_negative_threshold and/or trigger.schedule_interval_s",
            )
        return None
    if not continuous:
        raise InvalidSpecError(
            path,
            value,
            "is only used with iterations 'continuous' (fixed iterations run back to back)",
            "remove the trigger or set iterations: continuous",
        )
    t = SpecReader(value, path, TriggerSpec)
    threshold = t.get("hard_negative_threshold")
    interval = t.get("schedule_interval_s")
    spec = TriggerSpec(
        hard_negative_threshold=None
        if threshold is None
        else t.integer("hard_negative_threshold", minimum=1),
        schedule_interval_s=None
        if interval is None
        else t.number("schedule_interval_s", minimum=0.0, exclusive_min=True),
    )
    t.done()
    if spec.hard_negative_threshold is None and spec.schedule_interval_s is None:
        raise InvalidSpecError(
            path,
            value,
            "names no condition",
            "set hard_negative_threshold, schedule_interval_s, or both",
        )
    return spec
