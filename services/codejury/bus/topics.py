"""Every Kafka topic CodeJury uses, in one place (see ARCHITECTURE.md, Data flow)."""

from __future__ import annotations

from typing import Final

SOLVE_REQUESTED: Final = "codejury.solve.requested"
CANDIDATES_GENERATED: Final = "codejury.candidates.generated"
CANDIDATES_EXECUTED: Final = "codejury.candidates.executed"
SOLVE_COMPLETED: Final = "codejury.solve.completed"
FEEDBACK: Final = "codejury.feedback"

PIPELINE_TOPICS: Final = (
    SOLVE_REQUESTED,
    CANDIDATES_GENERATED,
    CANDIDATES_EXECUTED,
    SOLVE_COMPLETED,
    FEEDBACK,
)

DLQ_SUFFIX: Final = ".dlq"


def dlq(topic: str) -> str:
    """The dead-letter topic for ``topic``."""
    return topic + DLQ_SUFFIX


def all_topics() -> tuple[str, ...]:
    """Pipeline topics and their dead-letter topics, the set the broker must hold."""
    return PIPELINE_TOPICS + tuple(dlq(t) for t in PIPELINE_TOPICS)
