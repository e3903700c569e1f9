"""What the runtime observed before a ``reconcile``, as data.

The runtime looks up the training job of the status's (iteration, attempt), counts the
canary traffic of each arm from the feedback since the current step started, counts the
hard negatives stored since the last iteration ended (``control.trigger``), and passes the
time: nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from codejury.control.errors import InvalidObservationError


class JobState(StrEnum):
    RUNNING = "Running"  # created, pending or running
    SUCCEEDED = "Succeeded"  # finished and registered ``version``
    FAILED = "Failed"  # finished without a version; ``reason`` says why


@dataclass(frozen=True)
class TrainingJob:
    """The training job of one (iteration, attempt). No job at all is ``None`` in
    ``Observations.job``."""

    iteration: int
    attempt: int
    state: JobState
    version: str | None = None  # SUCCEEDED: the reranker version the job registered
    metrics: dict[str, float] = field(default_factory=dict)  # SUCCEEDED: what it measured
    reason: str = ""  # FAILED: why (exit code, the job's last error line)

    def __post_init__(self) -> None:
        if self.state is JobState.SUCCEEDED and not self.version:
            raise InvalidObservationError(
                f"TrainingJob(iteration={self.iteration}, attempt={self.attempt}).version="
                f"{self.version!r}: a succeeded job must name the version it registered"
            )


@dataclass(frozen=True)
class ArmStats:
    """One arm's traffic since the current canary step started.

    ``requests`` counts every request the arm served (probes included), ``errors`` those
    that failed in the reranker; ``labelled`` counts requests that carried tests, and
    ``passed`` those whose chosen candidate passed them. ``p99_latency_ms`` is None when
    no latency was measured.
    """

    requests: int = 0
    errors: int = 0
    labelled: int = 0
    passed: int = 0
    p99_latency_ms: float | None = None

    def __post_init__(self) -> None:
        counts = {
            name: getattr(self, name) for name in ("requests", "errors", "labelled", "passed")
        }
        for name, value in counts.items():
            if value < 0:
                raise InvalidObservationError(f"ArmStats.{name}={value}: counts are >= 0")
        if self.errors > self.requests or self.labelled > self.requests:
            raise InvalidObservationError(
                f"ArmStats(requests={self.requests}, errors={self.errors}, labelled="
                f"{self.labelled}): errors and labelled requests are subsets of requests"
            )
        if self.passed > self.labelled:
            raise InvalidObservationError(
                f"ArmStats.passed={self.passed} > labelled={self.labelled}: only labelled "
                "requests can pass"
            )

    @property
    def pass_rate(self) -> float:
        return self.passed / self.labelled if self.labelled else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class CanaryTraffic:
    """Both arms' traffic, counted from ``since`` (the status's ``step_started_at``)."""

    since: datetime
    stable: ArmStats
    canary: ArmStats


@dataclass(frozen=True)
class Observations:
    """Everything ``reconcile`` needs from outside; ``now`` must carry a timezone."""

    now: datetime
    job: TrainingJob | None = None
    traffic: CanaryTraffic | None = None
    new_hard_negatives: int = 0

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise InvalidObservationError(
                f"Observations.now={self.now.isoformat()}: naive time; pass "
                "datetime.now(timezone.utc)"
            )
        if self.new_hard_negatives < 0:
            raise InvalidObservationError(
                f"Observations.new_hard_negatives={self.new_hard_negatives}: a count is >= 0"
            )
