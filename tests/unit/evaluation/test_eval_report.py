"""The report of a hand-built summary: Markdown cells, JSON round trip, a real PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from codejury.evaluation.errors import ReportError
from codejury.evaluation.metrics import (
    CandidateOutcome,
    EvalSummary,
    ProblemOutcome,
    summarize,
)
from codejury.evaluation.report import (
    SCHEMA_VERSION,
    markdown,
    read_json,
    to_json,
    write_chart,
    write_json,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def cand(passed: bool | None, rm: float, lp: float) -> CandidateOutcome:
    return CandidateOutcome(passed, {"reward_model": rm, "logprob": lp})


@pytest.fixture
def summary() -> EvalSummary:
    """python: random 0.25, reward_model 0.5, logprob 0, oracle 2/3, greedy 1/3, one
    unlabelled; cpp: everything 1 (oracle == random); see test_eval_metrics for the sums."""
    return summarize(
        [
            ProblemOutcome(
                "p1",
                "python",
                (cand(True, 9, 1), cand(False, 5, 8), cand(False, 1, 3), cand(None, 2, 8)),
                greedy_passed=True,
            ),
            ProblemOutcome(
                "p2",
                "python",
                (cand(False, 7, 5), cand(True, 7, 2), cand(True, 3, 2), cand(False, 1, 9)),
                greedy_passed=False,
            ),
            ProblemOutcome(
                "p3", "python", (cand(False, 0, 0), cand(False, 1, 1)), greedy_passed=False
            ),
            ProblemOutcome("p1", "cpp", (cand(True, 1, 1), cand(True, 0, 0)), greedy_passed=True),
        ]
    )


def test_markdown_table_rows_in_percent_with_one_decimal(summary: EvalSummary) -> None:
    lines = markdown(summary).splitlines()
    assert lines[:5] == [
        "| language | problems | n | greedy | random | reward_model | logprob | oracle "
        "| gap closed: reward_model | gap closed: logprob |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| cpp | 1 | 2 | 100.0% | 100.0% | 100.0% | 100.0% | 100.0% | — | — |",
        "| python | 3 | 2-4 | 33.3% | 25.0% | 50.0% | 0.0% | 66.7% | 60.0% | -60.0% |",
        "| **average** | 4 | 2-4 | 66.7% | 62.5% | 75.0% | 50.0% | 83.3% | 60.0% | -60.0% |",
    ]
    text = "\n".join(lines)
    assert "unweighted mean over languages" in text
    assert "counted as not passing: 1 (python 1)." in text
    assert "Reference" not in text


def test_markdown_says_so_when_nothing_was_unlabelled() -> None:
    clean = summarize([ProblemOutcome("p", "go", (CandidateOutcome(True, {}),))])
    assert "Unlabelled candidates (the sandbox could not run them): none." in markdown(clean)
    assert "| go | 1 | 1 | — | 100.0% | 100.0% |" in markdown(clean)  # no greedy, no rankers


def test_references_render_under_the_table_in_their_own_columns(summary: EvalSummary) -> None:
    text = markdown(
        summary,
        references={
            "RewardRanker | paper": {"python": 0.5, "rust": 0.312, "average": 0.45},
            "greedy, paper": {"cpp": 0.25},
        },
    )
    table, _, section = text.partition("### Reference numbers")
    assert "RewardRanker" not in table
    assert "|  | cpp | python | rust | average |" in section  # measured, then the others
    assert "| RewardRanker \\| paper | — | 50.0% | 31.2% | 45.0% |" in section
    assert "| greedy, paper | 25.0% | — | — | — |" in section
    assert "not measured here" in section


@pytest.mark.parametrize("value", [45.3, -0.1, float("nan")])
def test_references_must_be_fractions(summary: EvalSummary, value: float) -> None:
    with pytest.raises(ReportError, match=r"reference 'paper', python: .* not a fraction.*0\.453"):
        markdown(summary, references={"paper": {"python": value}})


def test_json_round_trips_with_a_stable_schema(summary: EvalSummary, tmp_path: Path) -> None:
    path = tmp_path / "eval.json"
    write_json(summary, path)
    assert read_json(path) == summary
    data = json.loads(path.read_text())
    assert data == to_json(summary)
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["rankers"] == ["reward_model", "logprob"]
    assert set(data) == {"schema_version", "rankers", "languages", "average"}
    python = data["languages"][1]
    assert set(python) == {
        "language",
        "problems",
        "n_min",
        "n_max",
        "unlabelled",
        "greedy",
        "random",
        "reranked",
        "oracle",
        "gap_closed",
    }
    assert (python["language"], python["random"], python["reranked"]["reward_model"]) == (
        "python",
        0.25,
        0.5,
    )
    assert data["languages"][0]["gap_closed"] == {"reward_model": None, "logprob": None}


def test_reading_another_schema_or_not_a_summary_is_a_report_error(
    summary: EvalSummary, tmp_path: Path
) -> None:
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({**to_json(summary), "schema_version": 99}))
    with pytest.raises(ReportError, match=r"schema_version 99, this code reads 1: write"):
        read_json(path)
    path.write_text(json.dumps({"schema_version": 1, "rankers": []}))
    with pytest.raises(ReportError, match=r"not an evaluation summary \(KeyError"):
        read_json(path)
    path.write_text("{not json")
    with pytest.raises(ReportError, match=r"cannot be read as JSON"):
        read_json(path)
    with pytest.raises(ReportError, match=r"cannot be read as JSON"):
        read_json(tmp_path / "absent.json")


def test_chart_is_a_real_png_of_plausible_size(summary: EvalSummary, tmp_path: Path) -> None:
    image = pytest.importorskip("matplotlib.image", reason="charts need the demo extra")
    path = tmp_path / "eval.png"
    write_chart(summary, path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 10_000
    pixels = image.imread(path)
    height, width = pixels.shape[:2]
    assert height >= 400 and width >= 600
    assert pixels.std() > 0.05  # something is drawn, not a blank canvas


def test_write_report_writes_all_three(summary: EvalSummary, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="charts need the demo extra")
    files = write_report(
        summary, tmp_path / "out", stem="humaneval", references={"paper": {"python": 0.5}}
    )
    assert files.json.name == "humaneval.json" and read_json(files.json) == summary
    assert "### Reference numbers" in files.markdown.read_text()
    assert files.chart.read_bytes()[:8] == PNG_SIGNATURE
