"""The demo's last act: one self-training iteration and a canary decision, small enough
for a laptop.

1. ``run_iteration`` with small settings (a few training problems, two PPO steps),
   starting with its cold start (MBXP Python canonical solutions and their failing
   mutants into the store, when it is empty);
2. the canary decision on the demo's own labelled requests, replayed: each demo problem
   is one request; the stable arm's pick is the reward model's top candidate as the
   pipeline served it, the canary arm's is the new version's top candidate over the same
   samples (scored here); ``canary.analyse`` with the default policy decides, and a pass
   promotes the new version to stable in the registry (a fail leaves stable as it is).

Replaying the same requests through both arms is a paired comparison, unlike live
traffic split by weight; the rule and its thresholds are the run's (``docs/control.md``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codejury.control.canary import CanaryDecision, Verdict, analyse
from codejury.control.observations import ArmStats
from codejury.control.spec import CanaryPolicy
from codejury.core.settings import Settings, with_group
from codejury.evaluation.datasets import BenchmarkProblem
from codejury.evaluation.metrics import ProblemOutcome
from codejury.execution.backends import ExecutionBackend
from codejury.pipeline.evaluate import REWARD_MODEL
from codejury.reranking.factory import load_version
from codejury.reranking.model import RewardModel
from codejury.reranking.registry import ModelRegistry
from codejury.training.iteration import IterationConfig, IterationDeps, run_iteration
from codejury.training.scoring import score_fitting
from codejury.training.store import TrainingStore


@dataclass(frozen=True)
class DemoSelfTraining:
    stable_before: str
    version: str
    heldout_before: float  # MBXP held-out pass@1 of the stable version
    heldout_after: float  # ... of the new version
    hard_negatives: int
    stable: ArmStats
    canary: ArmStats
    decision: CanaryDecision
    promoted: bool
    canary_scores: list[list[float]]  # the new version's, per demo problem and candidate


def arm(outcomes: Sequence[ProblemOutcome], scores: Sequence[Sequence[float]]) -> ArmStats:
    """Each problem one request; it passes when the top-scored candidate (the first of a
    tie, as the Rank service picks) passed; problems without a labelled pick do not count."""
    labelled = passed = 0
    for outcome, values in zip(outcomes, scores, strict=True):
        if not values:
            continue
        pick = outcome.candidates[max(range(len(values)), key=values.__getitem__)]
        if pick.passed is None:
            continue
        labelled += 1
        passed += pick.passed
    return ArmStats(requests=len(outcomes), labelled=labelled, passed=passed)


@dataclass(frozen=True)
class IterationSize:
    """How big a self-training iteration is (the cold start is iteration 0's data): the
    demo's (``codejury demo``'s options; small enough for a laptop) and ``bench method``'s."""

    cold_start_problems: int  # MBXP canonical solutions per language, against their mutants
    training_problems: int  # MBXP problems per language for PPO, sampling and mining
    samples_per_problem: int  # mining samples from the aligned generator
    ppo_steps: int
    ppo_batch_size: int
    ppo_mini_batch_size: int
    ppo_max_new_tokens: int

    def on(self, settings: Settings, languages: Sequence[str]) -> Settings:
        """``settings`` with these sizes as its ``training.*`` for ``languages``."""
        return with_group(
            settings,
            "training",
            languages=",".join(languages),
            cold_start_problems=self.cold_start_problems,
            cold_start_mutants=3,
            problems_per_language=self.training_problems,
            samples_per_problem=self.samples_per_problem,
            ppo_steps=self.ppo_steps,
            ppo_batch_size=self.ppo_batch_size,
            ppo_mini_batch_size=self.ppo_mini_batch_size,
            ppo_max_new_tokens=self.ppo_max_new_tokens,
        )


def demo_self_training(
    settings: Settings,
    outcomes: Sequence[ProblemOutcome],
    problems: Sequence[BenchmarkProblem],
    *,
    data_dir: Path,
    backend: Callable[[], contextlib.AbstractContextManager[ExecutionBackend]],
    report: Callable[[str], None],
    size: IterationSize,
) -> DemoSelfTraining:
    registry = ModelRegistry(settings.run_dir / "reranking" / "registry")
    store = TrainingStore.from_settings(settings)
    stable = registry.resolve("stable")
    if not store.parts():  # the iteration's coldstart step seeds it
        report(f"cold start: mutating {size.cold_start_problems} MBXP Python canonical solutions")
    small = size.on(settings, ["python"])
    config = IterationConfig.from_settings(small, 1, base_version=stable)
    deps = IterationDeps(settings, store, registry, backend, data_dir)
    result = run_iteration(config, deps, on_step=lambda step, what: report(f"  {step}: {what}"))
    if result.version_id is None:  # unreachable without stop_after
        raise RuntimeError("the demo iteration registered no version")
    version = result.version_id
    report(f"canary decision: {version} against {stable} on the demo's requests")
    new = _scores(registry, version, settings, outcomes, problems)
    served = [[c.scores.get(REWARD_MODEL, float("-inf")) for c in o.candidates] for o in outcomes]
    stable_arm, canary_arm = arm(outcomes, served), arm(outcomes, new)
    policy = CanaryPolicy(min_samples=max(1, stable_arm.labelled))
    decision = analyse(policy, stable_arm, canary_arm)
    promoted = decision.verdict is Verdict.PASS
    if promoted:
        registry.mark_stable(version)
    metrics = registry.get(version).metrics
    return DemoSelfTraining(
        stable_before=stable,
        version=version,
        heldout_before=metrics.get("base_heldout_pass_at_1", 0.0),
        heldout_after=metrics.get("heldout_pass_at_1", 0.0),
        hard_negatives=int(metrics.get("mining_hard_negatives", 0)),
        stable=stable_arm,
        canary=canary_arm,
        decision=decision,
        promoted=promoted,
        canary_scores=new,
    )


def _scores(
    registry: ModelRegistry,
    version: str,
    settings: Settings,
    outcomes: Sequence[ProblemOutcome],
    problems: Sequence[BenchmarkProblem],
) -> list[list[float]]:
    model = load_version(settings, registry, version)
    prompts = {(p.problem.language, p.problem.problem_id): p.problem.prompt for p in problems}
    return score_outcomes(model, outcomes, prompts)


def score_outcomes(
    model: RewardModel,
    outcomes: Sequence[ProblemOutcome],
    prompts: Mapping[tuple[str, str], str],
    *,
    on_done: Callable[[ProblemOutcome, list[float]], None] | None = None,
) -> list[list[float]]:
    """``model``'s score of every candidate of every outcome (the same samples a served
    version ranked: a paired comparison); a program too long to score gets ``-inf``."""
    out = []
    for o in outcomes:
        prompt = prompts[(o.language, o.problem_id)]
        scores = score_fitting(model, prompt, [c.completion for c in o.candidates])
        values = [float("-inf") if s is None else s for s in scores]
        if on_done is not None:
            on_done(o, values)
        out.append(values)
    return out
