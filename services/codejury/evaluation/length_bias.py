"""How much of a ranker's choice is program length (pure).

A ranker can beat or lose to a random pick for a reason that has nothing to do with
correctness: preferring longer or shorter programs. ``bench method`` found exactly that
(issue 18): every reward-model version trained on the cold start ranked the longer of
two candidates higher in 66-69% of pairs (the untrained head: 53%), while the demo
generator's passing programs are its short ones (failing samples ramble until the token
limit). The table
alone shows only that the reward model loses to a random pick; these numbers show why.

Both measures compare candidates within a problem only (across problems, length says
more about the problem than about the candidate), in characters of the completion (so
they do not depend on any tokenizer), and skip pairs that cannot say anything: equal
lengths, and for a ranker equal scores.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from codejury.evaluation.metrics import ProblemOutcome


@dataclass(frozen=True)
class Preference:
    """Over ``pairs`` candidate pairs of different length, the share in which the longer
    one wins (for a ranker: scores higher; for the labels: passes). None: no such pair."""

    longer: float | None
    pairs: int


@dataclass(frozen=True)
class LengthReport:
    passing_median_chars: float | None  # None: no passing candidate
    failing_median_chars: float | None  # None: no failing candidate
    labels: Preference  # (passing, failing) pairs: how often the passing one is the longer
    rankers: dict[str, Preference]  # ranker -> how often it scores the longer one higher


def length_report(outcomes: Sequence[ProblemOutcome], rankers: Sequence[str]) -> LengthReport:
    """Length against the labels and against each ranker's scores. Unlabelled candidates
    count as failing, as in the table."""
    passing = [len(c.completion) for o in outcomes for c in o.candidates if c.passed]
    failing = [len(c.completion) for o in outcomes for c in o.candidates if not c.passed]
    label_wins = label_pairs = 0
    wins = dict.fromkeys(rankers, 0)
    pairs = dict.fromkeys(rankers, 0)
    for outcome in outcomes:
        for a, b in combinations(outcome.candidates, 2):
            if len(a.completion) == len(b.completion):
                continue
            longer, shorter = (a, b) if len(a.completion) > len(b.completion) else (b, a)
            if bool(longer.passed) != bool(shorter.passed):
                label_pairs += 1
                label_wins += bool(longer.passed)
            for ranker in rankers:
                high, low = longer.scores.get(ranker), shorter.scores.get(ranker)
                if high is None or low is None or high == low:
                    continue
                pairs[ranker] += 1
                wins[ranker] += high > low
    return LengthReport(
        passing_median_chars=statistics.median(passing) if passing else None,
        failing_median_chars=statistics.median(failing) if failing else None,
        labels=_preference(label_wins, label_pairs),
        rankers={r: _preference(wins[r], pairs[r]) for r in rankers},
    )


def _preference(wins: int, pairs: int) -> Preference:
    return Preference(wins / pairs if pairs else None, pairs)


def share(preference: Preference) -> str:
    """``67% of 5533 pairs``, or ``-`` where no pair counted."""
    if preference.longer is None:
        return "-"
    return f"{100 * preference.longer:.0f}% of {preference.pairs} pairs"


def describe(report: LengthReport, names: Mapping[str, str]) -> list[str]:
    """Two sentences: what length says about the labels, then about each ranker's choice
    (``names``: ranker -> what a reader sees, in the order to list them)."""

    def chars(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    return [
        f"Length: passing candidates have a median of {chars(report.passing_median_chars)} "
        f"characters, failing ones {chars(report.failing_median_chars)}; of two candidates "
        "of one problem, one passing and one failing, the passing one is the longer in "
        f"{share(report.labels)}.",
        "Each ranker scores the longer of two candidates of one problem higher in: "
        + "; ".join(f"{label} {share(report.rankers[r])}" for r, label in names.items())
        + " (50%: length-blind).",
    ]
