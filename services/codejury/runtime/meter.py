"""What the local runtime observes of the traffic: per reranker version, counted from the
bus, and probe requests that keep both arms labelled when users send none.

``TrafficMeter`` follows two topics without a consumer group (every replica, and a
restarted runtime, sees everything again from the start of the topic, so counts do not
depend on when the runtime started; events are filtered by their envelope's time):

- ``codejury.solve.completed``: one per request, with the reranker version that ranked
  it; a request with an error counts as an error of that version;
- ``codejury.feedback``: one per ranked candidate; the *chosen* candidate of a request
  labels it (PASSED / FAILED; UNLABLLED ones are not counted), and every scored, labelled
  candidate feeds the hard-negative count of the trigger.

Latency is measured on the probes the runtime sends itself (round trip through Solve),
per version that answered.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from codejury.bus.envelope import Event
from codejury.bus.tail import TopicTail
from codejury.bus.topics import FEEDBACK, SOLVE_COMPLETED
from codejury.control.observations import ArmStats, CanaryTraffic
from codejury.control.trigger import ScoredOutcome, count_hard_negatives
from codejury.core.settings import BusSettings
from codejury.core.stats import percentile
from codejury.proto.v1 import events_pb2

_KEEP = 200_000  # events kept per kind: a bound on memory, far above a canary step's needs


@dataclass(frozen=True, slots=True)
class _Completed:
    at: datetime
    request_id: str
    version: str
    error: bool


@dataclass(frozen=True, slots=True)
class _Chosen:
    at: datetime
    request_id: str
    version: str
    passed: bool


@dataclass(frozen=True, slots=True)
class _Latency:
    at: datetime
    version: str
    ms: float


class TrafficMeter:
    """Counts per reranker version since a given time; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._completed: deque[_Completed] = deque(maxlen=_KEEP)
        self._chosen: deque[_Chosen] = deque(maxlen=_KEEP)
        self._scored: deque[tuple[datetime, ScoredOutcome]] = deque(maxlen=_KEEP)
        self._latency: deque[_Latency] = deque(maxlen=_KEEP)
        self._tails: list[TopicTail] = []

    # -- feeding -----------------------------------------------------------------------

    def follow(self, bus: BusSettings) -> TrafficMeter:
        """Start following the two topics from their beginning."""
        for topic in (SOLVE_COMPLETED, FEEDBACK):
            tail = TopicTail(bus, topic, self.on_event, start="beginning", name="run-meter")
            self._tails.append(tail.start())
        return self

    def stop(self) -> None:
        for tail in self._tails:
            tail.stop()
        self._tails.clear()

    def on_event(self, event: Event) -> None:
        at = event.envelope.created_at.ToDatetime(tzinfo=UTC)
        payload = event.payload
        with self._lock:
            if isinstance(payload, events_pb2.SolveCompleted):
                self._completed.append(
                    _Completed(
                        at, payload.request_id, payload.reranker_version, bool(payload.error)
                    )
                )
            elif isinstance(payload, events_pb2.Feedback):
                self._feedback(at, payload)

    def _feedback(self, at: datetime, f: events_pb2.Feedback) -> None:
        if f.label not in (events_pb2.FEEDBACK_LABEL_PASSED, events_pb2.FEEDBACK_LABEL_FAILED):
            return
        passed = f.label == events_pb2.FEEDBACK_LABEL_PASSED
        if f.chosen:
            self._chosen.append(_Chosen(at, f.request_id, f.reranker_version, passed))
        if f.HasField("score"):
            outcome = ScoredOutcome(
                f.request_id, f.language, f.problem_id, f.score.score, passed, f.reranker_version
            )
            self._scored.append((at, outcome))

    def record_latency(self, version: str, ms: float, *, at: datetime | None = None) -> None:
        with self._lock:
            self._latency.append(_Latency(at or datetime.now(UTC), version, ms))

    # -- reading -----------------------------------------------------------------------

    def arm(self, version: str | None, since: datetime) -> ArmStats:
        if version is None:
            return ArmStats()
        with self._lock:
            completed = [c for c in self._completed if c.version == version and c.at >= since]
            chosen = {
                c.request_id: c for c in self._chosen if c.version == version and c.at >= since
            }
            latencies = [x.ms for x in self._latency if x.version == version and x.at >= since]
        requests = {c.request_id for c in completed} | set(chosen)
        errors = len({c.request_id for c in completed if c.error})
        return ArmStats(
            requests=len(requests),
            errors=errors,
            labelled=len(chosen),
            passed=sum(c.passed for c in chosen.values()),
            p99_latency_ms=percentile(latencies, 0.99) if latencies else None,
        )

    def versions_since(self, since: datetime) -> Counter[str]:
        """Requests ranked per reranker version since ``since``."""
        with self._lock:
            return Counter(c.version for c in self._completed if c.at >= since)

    def traffic(self, since: datetime, stable: str | None, canary: str | None) -> CanaryTraffic:
        return CanaryTraffic(since, self.arm(stable, since), self.arm(canary, since))

    def hard_negatives_since(self, since: datetime | None) -> int:
        with self._lock:
            rows: Sequence[ScoredOutcome] = [
                row for at, row in self._scored if since is None or at >= since
            ]
        return count_hard_negatives(rows)
