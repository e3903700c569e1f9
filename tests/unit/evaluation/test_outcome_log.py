"""The per-problem outcome log of ``bench method``: what a rerun skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from codejury.evaluation.datasets import BenchmarkProblem
from codejury.evaluation.errors import ReportError
from codejury.evaluation.metrics import CandidateOutcome, ProblemOutcome
from codejury.evaluation.outcome_log import OutcomeLog, parse, pending, read, to_json
from codejury.proto.v1 import domain_pb2


def _bench(language: str, pid: str) -> BenchmarkProblem:
    return BenchmarkProblem(domain_pb2.Problem(problem_id=pid, language=language), None)


def _outcome(language: str, pid: str, *, passed: bool | None = True) -> ProblemOutcome:
    return ProblemOutcome(
        pid,
        language,
        (
            CandidateOutcome(passed, {"reward_model": float("-inf"), "logprob": -0.5}, "x = 1"),
            CandidateOutcome(False, {"reward_model": 0.25, "logprob": -1.5}, "x = 2"),
        ),
        greedy_passed=False,
    )


def test_pending_keeps_order_and_skips_done() -> None:
    problems = [
        _bench("python", "HumanEval_0"),
        _bench("cpp", "HumanEval_0"),
        _bench("python", "HumanEval_1"),
    ]
    done = [("python", "HumanEval_0")]  # the same id in another language is not done
    assert pending(problems, done) == problems[1:]
    assert pending(problems, []) == problems
    assert (
        pending(
            problems, [("python", "HumanEval_0"), ("cpp", "HumanEval_0"), ("python", "HumanEval_1")]
        )
        == []
    )


def test_round_trip_with_a_non_finite_score(tmp_path: Path) -> None:
    log = OutcomeLog(tmp_path / "outcomes.jsonl")
    first, second = _outcome("python", "a", passed=None), _outcome("cpp", "b")
    log.append(first)
    log.append(second)
    line = (tmp_path / "outcomes.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["candidates"][0]["scores"]["reward_model"] is None  # standard JSON
    assert read(tmp_path / "outcomes.jsonl") == {("python", "a"): first, ("cpp", "b"): second}


def test_no_log_is_nothing_done(tmp_path: Path) -> None:
    assert read(tmp_path / "missing.jsonl") == {}


def test_a_torn_last_line_is_dropped_and_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    whole = json.dumps(to_json(_outcome("python", "a"))) + "\n"
    torn = json.dumps(to_json(_outcome("python", "b")))[:40]
    path.write_text(whole + torn)
    assert list(read(path)) == [("python", "a")]  # b is done again
    log = OutcomeLog(path)
    log.append(_outcome("python", "b"))
    assert list(read(path)) == [("python", "a"), ("python", "b")]
    assert path.read_text().count("\n") == 2


def test_a_later_line_replaces_an_earlier_one() -> None:
    old = json.dumps(to_json(_outcome("python", "a", passed=False)))
    new = json.dumps(to_json(_outcome("python", "a", passed=True)))
    assert parse(old + "\n" + new + "\n")[("python", "a")].candidates[0].passed is True


def test_a_foreign_line_is_refused() -> None:
    with pytest.raises(ReportError, match="line 1: not a problem outcome"):
        parse('{"something": "else"}\n')
