"""The paper's Table 1 shape with intervals, from per-problem outcomes (pure).

Rows are named and described by ``RowSpec``: greedy decoding, a uniformly random pick,
a ranker's top pick (the mean log-probability, the reward model of each iteration), the
oracle. Each row gets a pass@1 with a bootstrap interval per language and for the
unweighted average over languages (``evaluation.bootstrap``); each comparison (row a
minus row b) the paired bootstrap interval of the per-problem difference. Every row and
comparison uses the same seed, so they are computed on the same resampled problems.

Rendering to Markdown lives here too: the table is data first, text second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from codejury.evaluation.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    Interval,
    Strata,
    bootstrap_interval,
    by_language,
    greedy_vector,
    oracle_vector,
    paired_difference,
    random_vector,
    top_pick_vector,
)
from codejury.evaluation.errors import InvalidOutcomesError
from codejury.evaluation.metrics import AVERAGE, ProblemOutcome


class RowKind(Enum):
    GREEDY = "greedy"  # the greedy sample passes
    RANDOM = "random"  # expected pass of a uniform pick: the share of passing candidates
    PICK = "pick"  # the ranker's top-scored candidate (ties: the earliest) passes
    ORACLE = "oracle"  # some candidate passes (pass@n)


@dataclass(frozen=True)
class RowSpec:
    name: str  # the key in reports and comparisons
    label: str  # what a reader sees
    kind: RowKind
    ranker: str | None = None  # PICK: the candidates' score to rank by

    def __post_init__(self) -> None:
        if (self.kind is RowKind.PICK) != (self.ranker is not None):
            raise InvalidOutcomesError(
                f"row {self.name!r}: a {self.kind.value} row takes "
                f"{'a ranker name' if self.kind is RowKind.PICK else 'no ranker'}"
            )


@dataclass(frozen=True)
class Row:
    name: str
    label: str
    by_language: Mapping[str, Interval]
    average: Interval


@dataclass(frozen=True)
class Comparison:
    a: str  # row names: a minus b
    b: str
    label: str
    by_language: Mapping[str, Interval]
    average: Interval


@dataclass(frozen=True)
class MethodTable:
    languages: tuple[str, ...]
    problems: Mapping[str, int]  # per language
    candidates_per_problem: tuple[int, int]  # fewest, most
    unlabelled: int  # candidates the sandbox could not label (counted as not passing)
    rows: tuple[Row, ...]
    comparisons: tuple[Comparison, ...]
    n_resamples: int
    level: float
    seed: int
    references: Mapping[str, float] = field(default_factory=dict)  # label -> average pass@1


def vector(outcomes: Sequence[ProblemOutcome], spec: RowSpec) -> list[float]:
    if spec.kind is RowKind.GREEDY:
        return greedy_vector(outcomes)
    if spec.kind is RowKind.RANDOM:
        return random_vector(outcomes)
    if spec.kind is RowKind.ORACLE:
        return oracle_vector(outcomes)
    if spec.ranker is None:  # unreachable: RowSpec checks it
        raise InvalidOutcomesError(f"row {spec.name!r} has no ranker")
    return top_pick_vector(outcomes, spec.ranker)


def method_table(
    outcomes: Sequence[ProblemOutcome],
    rows: Sequence[RowSpec],
    comparisons: Sequence[tuple[str, str]],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    references: Mapping[str, float] | None = None,
) -> MethodTable:
    """Every row and comparison with intervals, per language and averaged."""
    if not outcomes:
        raise InvalidOutcomesError("no problem outcomes: run at least one problem")
    keys = [(o.language, o.problem_id) for o in outcomes]
    if len(set(keys)) != len(keys):
        raise InvalidOutcomesError("a problem appears twice: pass one outcome per problem")
    names = [spec.name for spec in rows]
    if len(set(names)) != len(names):
        raise InvalidOutcomesError(f"row names repeat in {names}: give each row its own name")
    strata = {spec.name: by_language(outcomes, vector(outcomes, spec)) for spec in rows}
    labels = {spec.name: spec.label for spec in rows}
    languages = tuple(sorted({o.language for o in outcomes}))

    def row_intervals(values: Strata) -> tuple[dict[str, Interval], Interval]:
        per = {
            lang: bootstrap_interval(
                {lang: values[lang]}, n_resamples=n_resamples, level=level, seed=seed
            )
            for lang in languages
        }
        return per, bootstrap_interval(values, n_resamples=n_resamples, level=level, seed=seed)

    def difference_intervals(a: Strata, b: Strata) -> tuple[dict[str, Interval], Interval]:
        per = {
            lang: paired_difference(
                {lang: a[lang]}, {lang: b[lang]}, n_resamples=n_resamples, level=level, seed=seed
            )
            for lang in languages
        }
        return per, paired_difference(a, b, n_resamples=n_resamples, level=level, seed=seed)

    table_rows = []
    for spec in rows:
        per, average = row_intervals(strata[spec.name])
        table_rows.append(Row(spec.name, spec.label, per, average))
    table_comparisons = []
    for a, b in comparisons:
        unknown = [x for x in (a, b) if x not in strata]
        if unknown:
            raise InvalidOutcomesError(
                f"comparison {a} - {b}: no row named {', '.join(unknown)}; rows are {names}"
            )
        per, average = difference_intervals(strata[a], strata[b])
        table_comparisons.append(Comparison(a, b, f"{labels[a]} - {labels[b]}", per, average))
    sizes = [len(o.candidates) for o in outcomes]
    return MethodTable(
        languages=languages,
        problems={lang: sum(o.language == lang for o in outcomes) for lang in languages},
        candidates_per_problem=(min(sizes), max(sizes)),
        unlabelled=sum(c.passed is None for o in outcomes for c in o.candidates),
        rows=tuple(table_rows),
        comparisons=tuple(table_comparisons),
        n_resamples=n_resamples,
        level=level,
        seed=seed,
        references=dict(references or {}),
    )


# -- Markdown --------------------------------------------------------------------------


def cell(interval: Interval, *, signed: bool = False) -> str:
    """``12.3 [8.1, 16.0]`` in percent (``+1.2 [-0.6, 3.0]`` for a difference)."""
    sign = "+" if signed else ""
    return (
        f"{100 * interval.estimate:{sign}.1f} "
        f"[{100 * interval.low:{sign}.1f}, {100 * interval.high:{sign}.1f}]"
    )


def to_markdown(table: MethodTable) -> str:
    level = f"{100 * table.level:g}%"
    header = ["", *table.languages, AVERAGE]
    counts = ", ".join(f"{lang} {table.problems[lang]}" for lang in table.languages)
    fewest, most = table.candidates_per_problem
    n = str(fewest) if fewest == most else f"{fewest}-{most}"
    lines = [
        f"pass@1 in %, {level} percentile bootstrap interval over problems "
        f"({table.n_resamples} resamples, seed {table.seed}); problems: {counts}; "
        f"n = {n} candidates per problem; {table.unlabelled} unlabelled candidates "
        "counted as failing. The average is the unweighted mean over languages.",
        "",
        _md_row(header),
        _md_row(["---"] * len(header)),
    ]
    for row in table.rows:
        lines.append(
            _md_row(
                [row.label, *(cell(row.by_language[x]) for x in table.languages), cell(row.average)]
            )
        )
    for label, value in table.references.items():
        lines.append(_md_row([label, *("" for _ in table.languages), f"{100 * value:.1f}"]))
    lines += [
        "",
        f"Paired differences (percentage points, {level} paired bootstrap interval of the "
        "per-problem difference; **bold**: the interval excludes 0):",
        "",
        _md_row(header),
        _md_row(["---"] * len(header)),
    ]
    for c in table.comparisons:
        cells = [
            _bold(cell(c.by_language[x], signed=True), c.by_language[x]) for x in table.languages
        ]
        lines.append(_md_row([c.label, *cells, _bold(cell(c.average, signed=True), c.average)]))
    return "\n".join(lines) + "\n"


def _bold(text: str, interval: Interval) -> str:
    return f"**{text}**" if interval.excludes_zero else text


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
