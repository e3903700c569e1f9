"""One labelled candidate, the row type of the training data store (pure).

Only a program's own outcome labels it: a row's ``status`` is an ``ExecutionStatus``
name other than ``SANDBOX_ERROR`` / unspecified (those are our failures, never a
negative example), and ``passed`` is true exactly when the status is ``PASSED``.

``program`` is what the reward model judges: the completion that follows the problem's
prompt (a generated completion, a canonical solution, or a mutant of one), not the
assembled program with its tests. ``prompt`` may be empty for rows from feedback events
(which do not carry it); pair construction then looks it up by problem.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from codejury.proto.v1 import domain_pb2
from codejury.training.errors import TrainingDataError

#: The statuses that label a row: every user-code outcome.
LABEL_STATUSES = frozenset(
    name
    for name in domain_pb2.ExecutionStatus.keys()  # noqa: SIM118 (protobuf enum wrapper)
    if name not in ("EXECUTION_STATUS_UNSPECIFIED", "SANDBOX_ERROR")
)
PASSED = "PASSED"


class Source(StrEnum):
    """Where a candidate came from."""

    GENERATOR = "generator"  # sampled by the generator (feedback events)
    MUTATION = "mutation"  # a mutant of a canonical solution (cold start)
    CANONICAL = "canonical"  # the dataset's reference solution


@dataclass(frozen=True, slots=True)
class LabelledCandidate:
    """A candidate program with its execution label, as stored."""

    problem_id: str
    language: str
    program: str
    status: str  # an ExecutionStatus name, e.g. "PASSED", "FAILED", "TIMEOUT"
    source: Source
    iteration: int = 0
    prompt: str = ""
    dataset: str = ""  # e.g. "mbxp"; empty when unknown (feedback)
    score: float | None = None  # the reward model's score, when one was given
    score_version: str = ""  # the reranker version that gave ``score``
    request_id: str = ""  # the solve request it was sampled for (feedback)
    candidate_id: str = ""
    detail: str = ""  # e.g. the mutation operator that made it
    row_id: str = field(default="")  # dedup key; derived from the content when empty

    def __post_init__(self) -> None:
        if self.status not in LABEL_STATUSES:
            raise TrainingDataError(
                f"status {self.status!r} of {self.language}/{self.problem_id} does not label a "
                f"candidate: use one of {', '.join(sorted(LABEL_STATUSES))} (SANDBOX_ERROR and "
                "unspecified outcomes are ours, not the program's: leave such rows out)"
            )
        if not self.problem_id or not self.language:
            raise TrainingDataError(
                f"problem_id {self.problem_id!r} / language {self.language!r}: both are "
                "required to group candidates by problem"
            )
        if self.iteration < 0:
            raise TrainingDataError(f"iteration {self.iteration}: must be >= 0")
        if not isinstance(self.source, Source):
            object.__setattr__(self, "source", _source(self.source))
        if not self.row_id:
            object.__setattr__(self, "row_id", row_key(self))

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def problem_key(self) -> tuple[str, str]:
        """(language, problem_id): the group pairs are drawn from."""
        return (self.language, self.problem_id)


def _source(value: object) -> Source:
    try:
        return Source(str(value))
    except ValueError as exc:
        raise TrainingDataError(
            f"source {value!r}: use one of {', '.join(s.value for s in Source)}"
        ) from exc


def row_key(row: LabelledCandidate) -> str:
    """A content key: the same candidate stored twice (a redelivered event, a re-run
    mining job) gets the same key, and snapshots keep it once."""
    parts = (
        row.language,
        row.problem_id,
        row.source.value,
        row.request_id,
        row.candidate_id,
        str(row.iteration),
        row.program,
    )
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
