"""Problem outcomes kept one JSON line per problem, so a long evaluation resumes.

A line is written (and fsync'd) as soon as a problem's outcome is known; a rerun reads
the file, skips the problems it holds and appends the rest. A process killed while
writing leaves at most a torn last line, which is ignored when read (the problem is
simply done again); any other malformed line is an error, since it means the file is
not this log. ``pending`` is the resume decision, pure over the problems and the log.

A score that is not finite (``-inf``: a candidate the reward model could not score)
is written as ``null`` and read back as ``-inf``, so every line is standard JSON.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from codejury.evaluation.datasets import BenchmarkProblem
from codejury.evaluation.errors import ReportError
from codejury.evaluation.metrics import CandidateOutcome, ProblemOutcome

ProblemKey = tuple[str, str]  # (language, problem id)


def key_of(problem: BenchmarkProblem) -> ProblemKey:
    return (problem.problem.language, problem.problem.problem_id)


def pending(
    problems: Sequence[BenchmarkProblem], done: Iterable[ProblemKey]
) -> list[BenchmarkProblem]:
    """The problems the log does not hold yet, in their order."""
    finished = set(done)
    return [p for p in problems if key_of(p) not in finished]


def to_json(outcome: ProblemOutcome) -> dict[str, Any]:
    return {
        "language": outcome.language,
        "problem_id": outcome.problem_id,
        "greedy_passed": outcome.greedy_passed,
        "candidates": [
            {
                "passed": c.passed,
                "scores": {k: v if math.isfinite(v) else None for k, v in c.scores.items()},
                "completion": c.completion,
            }
            for c in outcome.candidates
        ],
    }


def from_json(record: dict[str, Any]) -> ProblemOutcome:
    return ProblemOutcome(
        problem_id=record["problem_id"],
        language=record["language"],
        candidates=tuple(
            CandidateOutcome(
                passed=c["passed"],
                scores={
                    k: float("-inf") if v is None else float(v) for k, v in c["scores"].items()
                },
                completion=c["completion"],
            )
            for c in record["candidates"]
        ),
        greedy_passed=record["greedy_passed"],
    )


def parse(text: str, *, where: str = "the log") -> dict[ProblemKey, ProblemOutcome]:
    """The outcomes of a log's text by problem; a torn last line (no newline) is dropped,
    a later line for the same problem replaces an earlier one."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with a newline: every line is whole
    elif lines:
        lines.pop()  # the last line was being written when the process stopped
    out: dict[ProblemKey, ProblemOutcome] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            outcome = from_json(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ReportError(
                f"{where}, line {number}: not a problem outcome ({exc}); it is not this "
                "benchmark's log: move it away or pass another output folder"
            ) from exc
        out[(outcome.language, outcome.problem_id)] = outcome
    return out


def read(path: Path) -> dict[ProblemKey, ProblemOutcome]:
    """The log at ``path`` (empty when there is none yet)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return parse(text, where=str(path))


class OutcomeLog:
    """Appends outcomes to ``path``, one fsync'd line each; safe to call from threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()

    def append(self, outcome: ProblemOutcome) -> None:
        line = json.dumps(to_json(outcome), sort_keys=True) + "\n"
        with self._lock, self.path.open("a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _drop_torn_tail(self) -> None:
        """Cut a torn last line off, so the next line starts on a line of its own."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return
        if text and not text.endswith("\n"):
            with self.path.open("r+") as f:
                f.truncate(len(text[: text.rfind("\n") + 1].encode()))
