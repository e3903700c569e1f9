"""An ``EvalSummary`` written three ways: JSON for machines (a stable schema, read back by
``read_json``), a Markdown table for the README and papers, and a PNG bar chart.

Reference numbers (another system's, a paper's) are the caller's to pass; none are kept
here, so a report never shows a number that this code did not measure or was not given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codejury.evaluation.errors import ReportError
from codejury.evaluation.metrics import AVERAGE, EvalSummary, LanguageSummary

#: Bumped whenever a field of the JSON changes meaning or goes away (adding one does not).
SCHEMA_VERSION = 1

#: name (e.g. "RewardRanker, paper Table 2") -> language (or "average") -> pass@1 fraction.
References = Mapping[str, Mapping[str, float]]

_MISSING = "—"


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path
    chart: Path


def write_report(
    summary: EvalSummary,
    directory: Path,
    *,
    stem: str = "eval",
    references: References | None = None,
) -> ReportFiles:
    """``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` in ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        directory / f"{stem}.json", directory / f"{stem}.md", directory / f"{stem}.png"
    )
    write_json(summary, files.json)
    files.markdown.write_text(markdown(summary, references=references), encoding="utf-8")
    write_chart(summary, files.chart)
    return files


# -- JSON ---------------------------------------------------------------------------------


def to_json(summary: EvalSummary) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "rankers": list(summary.rankers),
        "languages": [_row_to_json(row) for row in summary.languages],
        "average": _row_to_json(summary.average),
    }


def write_json(summary: EvalSummary, path: Path) -> None:
    path.write_text(json.dumps(to_json(summary), indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> EvalSummary:
    """The summary ``write_json`` wrote to ``path`` (of this schema version)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot be read as JSON ({exc})") from exc
    return from_json(data, source=str(path))


def from_json(data: Any, *, source: str = "the data") -> EvalSummary:
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{source}: schema_version {version!r}, this code reads {SCHEMA_VERSION}: "
            "write the summary again with write_json of this version"
        )
    try:
        return EvalSummary(
            rankers=tuple(str(name) for name in data["rankers"]),
            languages=tuple(_row_from_json(row) for row in data["languages"]),
            average=_row_from_json(data["average"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(
            f"{source}: not an evaluation summary ({type(exc).__name__}: {exc}): "
            "pass a file that write_json wrote"
        ) from exc


def _row_to_json(row: LanguageSummary) -> dict[str, Any]:
    return {
        "language": row.language,
        "problems": row.problems,
        "n_min": row.n_min,
        "n_max": row.n_max,
        "unlabelled": row.unlabelled,
        "greedy": row.greedy,
        "random": row.random,
        "reranked": dict(row.reranked),
        "oracle": row.oracle,
        "gap_closed": dict(row.gap_closed),
    }


def _row_from_json(row: dict[str, Any]) -> LanguageSummary:
    return LanguageSummary(
        language=str(row["language"]),
        problems=int(row["problems"]),
        n_min=int(row["n_min"]),
        n_max=int(row["n_max"]),
        unlabelled=int(row["unlabelled"]),
        greedy=_optional_float(row["greedy"]),
        random=float(row["random"]),
        reranked={str(name): float(value) for name, value in row["reranked"].items()},
        oracle=float(row["oracle"]),
        gap_closed={str(name): _optional_float(v) for name, v in row["gap_closed"].items()},
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- Markdown -----------------------------------------------------------------------------


def markdown(summary: EvalSummary, *, references: References | None = None) -> str:
    """The table (languages, then the average), what its columns mean, how many
    candidates were unlabelled, and the ``references`` (if any) in a table of their own."""
    rankers = [_escape(name) for name in summary.rankers]
    header = [
        "language",
        "problems",
        "n",
        "greedy",
        "random",
        *rankers,
        "oracle",
        *(f"gap closed: {name}" for name in rankers),
    ]
    rows = [_markdown_row(row, summary.rankers) for row in summary.languages]
    rows.append([f"**{AVERAGE}**", *_markdown_row(summary.average, summary.rankers)[1:]])
    lines = [
        *_table(header, rows),
        "",
        "pass@1 in %. random: the expected pass@1 of a uniformly random pick among the n "
        "candidates; a ranker: pass@1 of its top-scored candidate (a tie at the top counts as "
        "the expectation over the tied candidates); oracle: pass@n, some candidate passes; "
        "gap closed: (ranker - random) / (oracle - random), — where oracle = random. "
        f"The {AVERAGE} row is the unweighted mean over languages.",
        "",
        _unlabelled_note(summary),
    ]
    if references:
        lines += ["", *_references_section(summary, references)]
    return "\n".join(lines) + "\n"


def _markdown_row(row: LanguageSummary, rankers: Sequence[str]) -> list[str]:
    n = str(row.n_min) if row.n_min == row.n_max else f"{row.n_min}-{row.n_max}"
    return [
        _escape(row.language),
        str(row.problems),
        n,
        _percent(row.greedy),
        _percent(row.random),
        *(_percent(row.reranked[name]) for name in rankers),
        _percent(row.oracle),
        *(_percent(row.gap_closed[name]) for name in rankers),
    ]


def _unlabelled_note(summary: EvalSummary) -> str:
    if summary.average.unlabelled == 0:
        return "Unlabelled candidates (the sandbox could not run them): none."
    per_language = ", ".join(
        f"{row.language} {row.unlabelled}" for row in summary.languages if row.unlabelled
    )
    return (
        f"Unlabelled candidates (the sandbox could not run them), counted as not passing: "
        f"{summary.average.unlabelled} ({per_language})."
    )


def _references_section(summary: EvalSummary, references: References) -> list[str]:
    _check_references(references)
    measured = [row.language for row in summary.languages]
    extra = sorted({lang for values in references.values() for lang in values} - {AVERAGE})
    columns = [*measured, *(lang for lang in extra if lang not in measured), AVERAGE]
    rows = [
        [_escape(name), *(_percent(values.get(lang)) for lang in columns)]
        for name, values in references.items()
    ]
    return [
        "### Reference numbers",
        "",
        "pass@1 in %, as reported elsewhere (not measured here), for comparison.",
        "",
        *_table(["", *map(_escape, columns)], rows),
    ]


def _check_references(references: References) -> None:
    for name, values in references.items():
        for language, value in values.items():
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ReportError(
                    f"reference {name!r}, {language}: {value!r} is not a fraction in [0, 1]: "
                    "pass pass@1 as a fraction (0.453 for 45.3%)"
                )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    align = ["---", *("---:" for _ in header[1:])]
    return [_line(header), _line(align), *map(_line, rows)]


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _percent(value: float | None) -> str:
    return _MISSING if value is None else f"{100 * value:.1f}%"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


# -- chart --------------------------------------------------------------------------------


def write_chart(summary: EvalSummary, path: Path, *, title: str = "pass@1 by language") -> None:
    """A grouped bar chart: one group per language and the average, one bar per method
    (greedy where measured, random, each ranker, oracle), pass@1 in %.

    Drawn on an Agg canvas of its own, so no global matplotlib backend is set or needed
    (this runs in servers and tests without a display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [*summary.languages, summary.average]
    series: list[tuple[str, Sequence[float | None]]] = [
        ("greedy", [row.greedy for row in rows]),
        ("random", [row.random for row in rows]),
        *((name, [row.reranked[name] for row in rows]) for name in summary.rankers),
        ("oracle", [row.oracle for row in rows]),
    ]
    series = [(name, values) for name, values in series if any(v is not None for v in values)]
    width = 0.8 / len(series)
    figure = Figure(figsize=(max(6.0, 1.5 + len(rows) * len(series) * 0.45), 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for index, (name, values) in enumerate(series):
        shown = [(x, 100 * v) for x, v in enumerate(values) if v is not None]
        bars = axes.bar(
            [x + (index - (len(series) - 1) / 2) * width for x, _ in shown],
            [v for _, v in shown],
            width,
            label=name,
        )
        axes.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    axes.set_xticks(range(len(rows)), [row.language for row in rows])
    axes.set_ylabel("pass@1 (%)")
    axes.set_ylim(0, 105)  # room for the labels of bars at 100%
    axes.set_title(title)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars
    figure.tight_layout()
    figure.savefig(path, format="png")
