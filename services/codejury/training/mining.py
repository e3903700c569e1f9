"""Hard-negative mining (pure): the failing samples the reward model scored too high.

After PPO the aligned generator samples N programs per training problem; they run in the
sandbox and the reward model that guided PPO scores them. A failing sample is a **hard
negative** when

- the problem has passing samples, and it is scored above the lowest-scored of them: the
  reranker would have put it before a program that works (the same rule as
  ``queries.hard_negatives`` uses for feedback rows); or
- no sample of the problem passes, and it is scored above the ``quantile`` of the scores
  of the problem's known passing programs (canonical solutions and earlier passing
  candidates from the training data, scored by the same model now). A problem with
  neither has no reference and yields none (counted).

Samples the model could not score (a program longer than its context) are never hard.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from codejury.core.stats import percentile
from codejury.training.errors import TrainingDataError

#: ``LabelledCandidate.detail`` of a mined hard negative, so pairs treat it as hard even
#: when its problem had no passing sample to compare with.
MINED_HARD_NEGATIVE = "mined-hard-negative"

ProblemKey = tuple[str, str]  # (language, problem_id)


@dataclass(frozen=True, slots=True)
class ScoredSample:
    """One executed sample with the reward model's score (None: could not be scored)."""

    language: str
    problem_id: str
    candidate_id: str
    passed: bool
    score: float | None

    @property
    def problem_key(self) -> ProblemKey:
        return (self.language, self.problem_id)


@dataclass
class MiningReport:
    """What mining found, for the iteration's metrics and the CLI table."""

    problems: int = 0
    samples: int = 0
    passing: int = 0
    failing: int = 0
    unscored: int = 0
    problems_with_pass: int = 0
    problems_without_reference: int = 0  # nothing passed and no known passing program
    above_passing: int = 0  # hard negatives by the first rule
    above_quantile: int = 0  # ... by the second
    by_language: Counter[str] = field(default_factory=Counter)

    @property
    def hard_negatives(self) -> int:
        return self.above_passing + self.above_quantile

    def metrics(self) -> dict[str, float]:
        return {
            "mining_problems": float(self.problems),
            "mining_samples": float(self.samples),
            "mining_passing": float(self.passing),
            "mining_failing": float(self.failing),
            "mining_unscored": float(self.unscored),
            "mining_problems_with_pass": float(self.problems_with_pass),
            "mining_problems_without_reference": float(self.problems_without_reference),
            "mining_hard_negatives": float(self.hard_negatives),
            "mining_hard_above_passing": float(self.above_passing),
            "mining_hard_above_quantile": float(self.above_quantile),
        }


def mine_hard_negatives(
    samples: Sequence[ScoredSample],
    reference_scores: Mapping[ProblemKey, Sequence[float]],
    *,
    quantile: float,
) -> tuple[set[str], MiningReport]:
    """The candidate ids of the hard negatives among ``samples``, and the counts."""
    if not 0.0 <= quantile <= 1.0:
        raise TrainingDataError(
            f"training.mining_quantile {quantile}: must be in [0, 1] (0.5: above the median "
            "score of the problem's known passing programs)"
        )
    report = MiningReport()
    by_problem: dict[ProblemKey, list[ScoredSample]] = defaultdict(list)
    for sample in samples:
        by_problem[sample.problem_key].append(sample)
    hard: set[str] = set()
    for key in sorted(by_problem):
        group = by_problem[key]
        report.problems += 1
        report.samples += len(group)
        report.passing += sum(s.passed for s in group)
        report.failing += sum(not s.passed for s in group)
        report.unscored += sum(s.score is None for s in group)
        passing = [s.score for s in group if s.passed and s.score is not None]
        if passing:
            report.problems_with_pass += 1
            threshold, by_rule = min(passing), "passing"
        elif reference_scores.get(key):
            threshold, by_rule = percentile(reference_scores[key], quantile), "quantile"
        else:
            report.problems_without_reference += 1
            continue
        for s in group:
            if not s.passed and s.score is not None and s.score > threshold:
                hard.add(s.candidate_id)
                report.by_language[s.language] += 1
                if by_rule == "passing":
                    report.above_passing += 1
                else:
                    report.above_quantile += 1
    return hard, report
