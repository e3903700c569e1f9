"""The numbers of the results table, from per-problem execution outcomes (pure).

Per language: how often greedy decoding passes; how often a uniformly random pick among
the n samples passes (its expectation, c/n, so no randomness enters); how often each
ranker's top-scored sample passes; how often any sample passes (the oracle, pass@n); and
how much of the room between random and oracle each ranker closes. The average row is
the unweighted mean over languages, as in the paper, so a language with more problems
does not weigh more.

Unlabelled candidates (``passed=None``: the sandbox failed, or the candidate was not run)
count as not passing everywhere. Evaluation never credits a program it could not show
passes, and keeping them (rather than dropping them) leaves n and every ranker's choice
as they were at serving time, where the ranker picks before anything runs. The summary
counts them so that a reader can judge how much they matter. (Training treats them
differently: there a SANDBOX_ERROR is never a negative example.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from codejury.evaluation.errors import InvalidOutcomesError
from codejury.evaluation.passk import pass_at_k

#: The language name of the row that averages the languages.
AVERAGE = "average"
# Below this, oracle and random are equal up to float rounding: a gap closed would divide
# rounding noise by rounding noise.
_NO_HEADROOM = 1e-12


@dataclass(frozen=True)
class CandidateOutcome:
    passed: bool | None  # None: unlabelled (a sandbox error, or not run); never a pass
    scores: Mapping[str, float]  # ranker name -> score; the highest score is its pick
    completion: str = ""  # the program text, for rankers scored after the fact


@dataclass(frozen=True)
class ProblemOutcome:
    problem_id: str
    language: str
    candidates: tuple[CandidateOutcome, ...]  # the n samples, each scored by every ranker
    greedy_passed: bool | None = None  # None: greedy decoding not measured for this problem


@dataclass(frozen=True)
class LanguageSummary:
    """One row of the table: a language, or the average over languages (``AVERAGE``).
    Rates are fractions in [0, 1] (a gap closed may be negative: worse than random)."""

    language: str
    problems: int
    n_min: int  # candidates per problem: the fewest and the most (equal when uniform)
    n_max: int
    unlabelled: int  # candidates with passed=None, counted as not passing
    greedy: float | None  # pass@1 of greedy decoding; None: not measured
    random: float  # expected pass@1 of a uniformly random pick
    reranked: Mapping[str, float]  # ranker -> pass@1 of its top-scored candidate
    oracle: float  # pass@n: some candidate passes
    gap_closed: Mapping[str, float | None]  # ranker -> (reranked - random) / (oracle - random);
    # None where oracle == random (no candidate set is mixed: no ranker can do better or worse)


@dataclass(frozen=True)
class EvalSummary:
    rankers: tuple[str, ...]  # in the order the first candidate's scores name them
    languages: tuple[LanguageSummary, ...]  # sorted by language
    average: LanguageSummary


def summarize(outcomes: Iterable[ProblemOutcome]) -> EvalSummary:
    """The table for ``outcomes``: one ``ProblemOutcome`` per (language, problem), every
    candidate scored by the same rankers, greedy measured for all of a language's
    problems or for none (a greedy run the sandbox failed counts as ``False``)."""
    problems = tuple(outcomes)
    if not problems:
        raise InvalidOutcomesError(
            "no problem outcomes to summarize: pass at least one ProblemOutcome"
        )
    rankers = tuple(problems[0].candidates[0].scores) if problems[0].candidates else ()
    by_language: dict[str, list[ProblemOutcome]] = {}
    seen: set[tuple[str, str]] = set()
    for problem in problems:
        _check(problem, rankers)
        if (problem.language, problem.problem_id) in seen:
            raise InvalidOutcomesError(
                f"problem {problem.problem_id!r} ({problem.language}) appears twice: pass one "
                "ProblemOutcome per problem, with all of its candidates"
            )
        seen.add((problem.language, problem.problem_id))
        by_language.setdefault(problem.language, []).append(problem)
    languages = tuple(
        _language_row(language, by_language[language], rankers) for language in sorted(by_language)
    )
    return EvalSummary(rankers, languages, _average_row(languages, rankers))


def _check(problem: ProblemOutcome, rankers: tuple[str, ...]) -> None:
    where = f"problem {problem.problem_id!r} ({problem.language})"
    if problem.language == AVERAGE:
        raise InvalidOutcomesError(
            f"{where}: the language {AVERAGE!r} names the average row; name the real language"
        )
    if not problem.candidates:
        raise InvalidOutcomesError(
            f"{where} has no candidates: pass@1 needs at least one; leave the problem out or "
            "pass its candidates (unlabelled ones with passed=None)"
        )
    for index, candidate in enumerate(problem.candidates):
        if set(candidate.scores) != set(rankers):
            raise InvalidOutcomesError(
                f"{where}, candidate {index}: scored by {sorted(candidate.scores)}, the first "
                f"candidate by {sorted(rankers)}: score every candidate with every ranker"
            )
        unscored = [name for name, score in candidate.scores.items() if math.isnan(score)]
        if unscored:
            raise InvalidOutcomesError(
                f"{where}, candidate {index}: NaN score from {', '.join(unscored)}: a NaN "
                "cannot be ranked; give the ranker's lowest score (e.g. -inf) instead"
            )


def _language_row(
    language: str, problems: Sequence[ProblemOutcome], rankers: tuple[str, ...]
) -> LanguageSummary:
    sizes = [len(p.candidates) for p in problems]
    passing = [sum(c.passed is True for c in p.candidates) for p in problems]
    random = _mean(pass_at_k(n, c, 1) for n, c in zip(sizes, passing, strict=True))
    oracle = _mean(pass_at_k(n, c, n) for n, c in zip(sizes, passing, strict=True))
    reranked = {name: _mean(_top_pick(p.candidates, name) for p in problems) for name in rankers}
    return LanguageSummary(
        language=language,
        problems=len(problems),
        n_min=min(sizes),
        n_max=max(sizes),
        unlabelled=sum(c.passed is None for p in problems for c in p.candidates),
        greedy=_greedy(language, problems),
        random=random,
        reranked=reranked,
        oracle=oracle,
        gap_closed={name: _gap(value, random, oracle) for name, value in reranked.items()},
    )


def _top_pick(candidates: Sequence[CandidateOutcome], ranker: str) -> float:
    """Whether the ranker's pick passes; with a tie at the top, the expectation over the
    tied candidates, so a ranker that scores everything alike equals random."""
    top = max(c.scores[ranker] for c in candidates)
    tied = [c.passed is True for c in candidates if c.scores[ranker] == top]
    return sum(tied) / len(tied)


def _greedy(language: str, problems: Sequence[ProblemOutcome]) -> float | None:
    measured = [p.greedy_passed for p in problems if p.greedy_passed is not None]
    if not measured:
        return None
    if len(measured) != len(problems):
        raise InvalidOutcomesError(
            f"greedy_passed is set for {len(measured)} of {len(problems)} {language} problems: "
            "set it for every problem (a sandbox error counts as False) or for none"
        )
    return _mean(measured)


def _average_row(languages: Sequence[LanguageSummary], rankers: tuple[str, ...]) -> LanguageSummary:
    random = _mean(row.random for row in languages)
    oracle = _mean(row.oracle for row in languages)
    reranked = {name: _mean(row.reranked[name] for row in languages) for name in rankers}
    greedy = [row.greedy for row in languages]
    return LanguageSummary(
        language=AVERAGE,
        problems=sum(row.problems for row in languages),
        n_min=min(row.n_min for row in languages),
        n_max=max(row.n_max for row in languages),
        unlabelled=sum(row.unlabelled for row in languages),
        # Over a subset of languages it would not compare with the other columns.
        greedy=None if None in greedy else _mean(g for g in greedy if g is not None),
        random=random,
        reranked=reranked,
        oracle=oracle,
        gap_closed={name: _gap(value, random, oracle) for name, value in reranked.items()},
    )


def _gap(reranked: float, random: float, oracle: float) -> float | None:
    headroom = oracle - random
    return None if headroom < _NO_HEADROOM else (reranked - random) / headroom


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return math.fsum(items) / len(items)
