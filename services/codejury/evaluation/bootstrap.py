"""Confidence intervals over problems for the paper's table (pure).

A row of the table (greedy, random pick, a ranker's pick, oracle) is a vector with one
value per problem: 1.0 when its program passes, 0.0 when not, and for the random pick
the share of passing candidates (the expected pass of a uniform pick, so no randomness
enters the point estimate). Its pass@1 is the vector's mean; over several languages it
is the unweighted mean of the languages' means, as in the paper, so a language with
more problems does not weigh more.

The interval is a percentile bootstrap over problems: problems are drawn with
replacement within each language (a stratified bootstrap: every resample keeps each
language's problem count, so the average row means the same thing in every resample),
the statistic recomputed, and the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
of the resampled statistics taken. A comparison of two rows on the same problems is the
same bootstrap of the per-problem differences (a paired bootstrap: both rows see the
same resampled problems), so the variance the rows share (easy and hard problems)
cancels and a small but consistent gain can be separated from zero.

The random draws come from ``random.Random(seed)``: the same seed, vectors and number of
resamples give the same interval. Unlabelled candidates (``passed=None``) count as not
passing, as in ``evaluation.metrics``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from codejury.evaluation.errors import InvalidOutcomesError
from codejury.evaluation.metrics import CandidateOutcome, ProblemOutcome

#: Vectors per stratum (language): the values of one row, one per problem.
Strata = Mapping[str, Sequence[float]]

DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval (fractions, not %)."""

    estimate: float
    low: float
    high: float
    level: float
    problems: int

    @property
    def excludes_zero(self) -> bool:
        """For a difference: whether the interval lies wholly on one side of zero."""
        return self.low > 0.0 or self.high < 0.0


# -- per-problem vectors ---------------------------------------------------------------


def pick_index(scores: Sequence[float]) -> int:
    """The top-scored candidate; among equal top scores the earliest, as the Rank service
    picks (a stable sort by score, descending)."""
    if not scores:
        raise InvalidOutcomesError("no candidates to pick from: a problem needs at least one")
    best = 0
    for index, score in enumerate(scores):
        if math.isnan(score):
            raise InvalidOutcomesError(
                f"candidate {index}: NaN score cannot be ranked; give the lowest score (-inf)"
            )
        if score > scores[best]:
            best = index
    return best


def _passes(candidate: CandidateOutcome) -> float:
    return 1.0 if candidate.passed is True else 0.0


def top_pick_vector(outcomes: Sequence[ProblemOutcome], ranker: str) -> list[float]:
    """1.0 where the ranker's pick (ties: the earliest) passes."""
    out = []
    for o in outcomes:
        missing = [i for i, c in enumerate(o.candidates) if ranker not in c.scores]
        if missing:
            raise InvalidOutcomesError(
                f"problem {o.problem_id!r} ({o.language}): candidates {missing} have no "
                f"{ranker!r} score; score every candidate with every ranker"
            )
        index = pick_index([c.scores[ranker] for c in o.candidates])
        out.append(_passes(o.candidates[index]))
    return out


def random_vector(outcomes: Sequence[ProblemOutcome]) -> list[float]:
    """The expected pass of a uniformly random pick: the share of passing candidates."""
    return [_share(o) for o in outcomes]


def _share(o: ProblemOutcome) -> float:
    if not o.candidates:
        raise InvalidOutcomesError(f"problem {o.problem_id!r} ({o.language}) has no candidates")
    return math.fsum(_passes(c) for c in o.candidates) / len(o.candidates)


def oracle_vector(outcomes: Sequence[ProblemOutcome]) -> list[float]:
    """1.0 where any candidate passes (pass@n)."""
    return [max(_passes(c) for c in o.candidates) if o.candidates else 0.0 for o in outcomes]


def greedy_vector(outcomes: Sequence[ProblemOutcome]) -> list[float]:
    """1.0 where the greedy sample passes; every problem must have it measured."""
    missing = [f"{o.language}/{o.problem_id}" for o in outcomes if o.greedy_passed is None]
    if missing:
        raise InvalidOutcomesError(
            f"greedy_passed is not measured for {len(missing)} problems (first: {missing[0]}): "
            "sample them with greedy decoding too, or leave the greedy row out"
        )
    return [1.0 if o.greedy_passed else 0.0 for o in outcomes]


def by_language(
    outcomes: Sequence[ProblemOutcome], vector: Sequence[float]
) -> dict[str, list[float]]:
    """A row's per-problem values grouped into strata by the problems' languages."""
    if len(outcomes) != len(vector):
        raise InvalidOutcomesError(
            f"{len(vector)} values for {len(outcomes)} problems: one value per problem"
        )
    out: dict[str, list[float]] = {}
    for o, value in zip(outcomes, vector, strict=True):
        out.setdefault(o.language, []).append(value)
    return out


# -- intervals -------------------------------------------------------------------------


def mean_of_means(strata: Strata) -> float:
    """The unweighted mean over strata of each stratum's mean."""
    _check(strata)
    return math.fsum(math.fsum(v) / len(v) for v in strata.values()) / len(strata)


def bootstrap_interval(
    strata: Strata,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> Interval:
    """The mean of means and its percentile bootstrap interval, problems resampled with
    replacement within each stratum."""
    _check(strata)
    if n_resamples < 1:
        raise InvalidOutcomesError(f"n_resamples {n_resamples}: resample at least once")
    if not 0.0 < level < 1.0:
        raise InvalidOutcomesError(f"level {level}: give a coverage in (0, 1), e.g. 0.95")
    rng = random.Random(seed)  # noqa: S311 - statistics, not secrets: seeded to reproduce
    groups = [list(strata[name]) for name in sorted(strata)]  # a fixed order: reproducible
    stats = sorted(
        math.fsum(math.fsum(rng.choices(g, k=len(g))) / len(g) for g in groups) / len(groups)
        for _ in range(n_resamples)
    )
    tail = (1.0 - level) / 2.0
    return Interval(
        estimate=mean_of_means(strata),
        low=_quantile(stats, tail),
        high=_quantile(stats, 1.0 - tail),
        level=level,
        problems=sum(len(g) for g in groups),
    )


def paired_difference(
    a: Strata,
    b: Strata,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> Interval:
    """Row ``a`` minus row ``b`` on the same problems: the bootstrap of the per-problem
    differences (both rows resampled together)."""
    if set(a) != set(b):
        raise InvalidOutcomesError(
            f"rows cover different languages ({sorted(a)} vs {sorted(b)}): compare rows over "
            "the same problems"
        )
    differences: dict[str, list[float]] = {}
    for name in a:
        if len(a[name]) != len(b[name]):
            raise InvalidOutcomesError(
                f"{name}: {len(a[name])} problems in one row and {len(b[name])} in the other: "
                "a paired comparison needs the same problems in the same order"
            )
        differences[name] = [x - y for x, y in zip(a[name], b[name], strict=True)]
    return bootstrap_interval(differences, n_resamples=n_resamples, level=level, seed=seed)


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default method)."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    if ordered[below] == ordered[above]:  # exact, not a rounding of an interpolation
        return ordered[below]
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _check(strata: Strata) -> None:
    if not strata:
        raise InvalidOutcomesError("no problems: a row needs at least one problem's value")
    empty = [name for name, values in strata.items() if not values]
    if empty:
        raise InvalidOutcomesError(
            f"no problems for {', '.join(sorted(empty))}: leave the language out or add problems"
        )
