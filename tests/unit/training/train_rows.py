"""Builders of labelled rows for the training tests."""

from __future__ import annotations

from codejury.training.records import LabelledCandidate, Source


def row(
    problem_id: str = "MBPP/1",
    program: str = "    return a + b\n",
    *,
    status: str = "PASSED",
    language: str = "python",
    source: Source = Source.GENERATOR,
    score: float | None = None,
    request_id: str = "",
    prompt: str = "def add(a, b):\n",
    candidate_id: str = "",
    iteration: int = 0,
    dataset: str = "mbxp",
) -> LabelledCandidate:
    return LabelledCandidate(
        problem_id=problem_id,
        language=language,
        program=program,
        status=status,
        source=source,
        iteration=iteration,
        prompt=prompt,
        dataset=dataset,
        score=score,
        score_version="v1" if score is not None else "",
        request_id=request_id,
        candidate_id=candidate_id,
    )
