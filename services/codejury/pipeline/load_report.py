"""``codejury bench load``'s arithmetic (pure): the fault schedule, and the report made from
what was measured.

The driver (``pipeline.load``) sends Solve requests at a fixed rate, injects the faults
this module schedules and reads the bus; it hands over plain records and this module
decides what they mean:

- **outcomes**: a request is *answered* (OK), *failed* with a code (any Solve error the
  client raised: a clear error, counted by code), or *lost* (sent, and neither an answer
  nor an error by the end of the run plus its grace: must be 0);
- **answered twice**: a request id with more than one distinct completion event id on
  ``codejury.solve.completed``, or a candidate with more than one distinct feedback event
  id: the pipeline did the request's work twice and said so twice (must be 0). The same
  event id seen twice is a *replayed record* (at-least-once after a crash): downstream
  consumers drop it by id, so it is counted apart and is not a duplicate answer;
- **recovery** from a fault: the first request *sent* at or after the fault that was
  answered OK; recovered at its answer, so time to recover = that answer's time minus the
  fault's (a request in flight before the fault proves nothing about the restarted stage);
- **windows** per fault, by the time a request was sent: *before* = the ``span_s`` up to
  the fault, *during* = from the fault to its recovery (the request that proved it was sent
  in it), *after* = the ``span_s`` after the recovery; p50 / p99 of the OK answers'
  latencies in each (nearest rank), failures counted by code. A fault never recovered has
  its *during* window run to the end of the run.

Times are seconds since the run started (the driver's ``time.monotonic()`` minus its start).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from codejury.core.stats import percentile
from codejury.pipeline.errors import InvalidLoadPlanError

OK = "OK"

#: the bounds ``codejury bench load`` accepts (validated by ``check_plan``)
MIN_DURATION_S = 120.0
MAX_DURATION_S = 3600.0
MAX_RATE = 10.0
#: time between two faults, at least: a killed stage needs seconds to start again
MIN_FAULT_GAP_S = 15.0
#: the longest before/after window of a fault
MAX_WINDOW_S = 60.0


class FaultKind(StrEnum):
    """What the load test breaks, in the order it breaks them."""

    KILL_GENERATION = "kill-generation"
    KILL_EXECUTION = "kill-execution"
    KILL_RERANKING = "kill-reranking"
    KILL_WORKER = "kill-worker"  # the Celery sandbox worker (and its pool)
    KILL_MODEL_SERVER = "kill-model-server"  # the reranking service's KServe child process
    BAD_EVENTS = "bad-events"  # garbage, wrong types, oversized records on the stage topics
    BAD_REQUESTS = "bad-requests"  # invalid Solve requests: INVALID_ARGUMENT expected


ALL_FAULTS: tuple[FaultKind, ...] = tuple(FaultKind)


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    kind: FaultKind
    at_s: float


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One Solve request the load sent: when, and how it ended (``ended_s`` None: no answer
    and no error by the end; ``code``: ``OK`` or the gRPC status code's name)."""

    request_id: str
    sent_s: float
    ended_s: float | None = None
    code: str | None = None

    @property
    def latency_s(self) -> float | None:
        return None if self.ended_s is None else self.ended_s - self.sent_s


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """A fault as it happened: when, and what was done (``detail``: the pid killed, the
    records published)."""

    kind: FaultKind
    at_s: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Window:
    start_s: float
    end_s: float
    sent: int
    answered: int
    failed: dict[str, int]
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class FaultReport:
    kind: FaultKind
    at_s: float
    detail: str
    recovery_s: float | None  # None: no request sent after it was answered OK
    before: Window
    during: Window
    after: Window


@dataclass(frozen=True, slots=True)
class Outcomes:
    sent: int
    answered: int
    failed: dict[str, int]  # by gRPC status code name
    lost: list[str]  # request ids

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


@dataclass(frozen=True, slots=True)
class Duplicates:
    answered_twice: list[str]  # request ids with more than one distinct completion id
    feedback_twice: list[str]  # "request/candidate" with more than one distinct feedback id
    replayed_records: int  # the same event id seen again (dropped downstream by id)


@dataclass(frozen=True, slots=True)
class LoadReport:
    duration_s: float
    rate: float
    outcomes: Outcomes
    duplicates: Duplicates
    faults: list[FaultReport]
    dead_letters: dict[str, dict[str, int]]  # topic -> error type -> count
    dead_letter_examples: dict[str, str] = field(default_factory=dict)  # "topic error": text
    probes: dict[str, str] = field(default_factory=dict)  # bad request -> code it got
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """What the issue asks: nothing lost, nothing answered twice, every fault recovered,
        every bad request refused as INVALID_ARGUMENT."""
        return (
            not self.outcomes.lost
            and not self.duplicates.answered_twice
            and not self.duplicates.feedback_twice
            and all(f.recovery_s is not None for f in self.faults)
            and all(code == "INVALID_ARGUMENT" for code in self.probes.values())
        )


# -- the plan ---------------------------------------------------------------------------


def check_plan(duration_s: float, rate: float, faults: Sequence[FaultKind] = ALL_FAULTS) -> None:
    """InvalidLoadPlanError naming the option, its value and the fix."""
    if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
        raise InvalidLoadPlanError(
            f"--duration: {duration_s:g}s is outside [{MIN_DURATION_S:g}, {MAX_DURATION_S:g}]; "
            f"the faults need at least {MIN_FAULT_GAP_S:g}s each to recover in, and the run "
            "is bounded"
        )
    if not 0 < rate <= MAX_RATE:
        raise InvalidLoadPlanError(
            f"--rate: {rate:g} requests/s is outside (0, {MAX_RATE:g}]: pick a rate the "
            "machine sustains (a 2-core machine: about 0.5)"
        )
    gap = duration_s / (len(faults) + 1)
    if faults and gap < MIN_FAULT_GAP_S:
        raise InvalidLoadPlanError(
            f"--duration: {duration_s:g}s leaves {gap:.1f}s between {len(faults)} faults, under "
            f"{MIN_FAULT_GAP_S:g}s: run at least {MIN_FAULT_GAP_S * (len(faults) + 1):g}s"
        )
    if duration_s * rate < 1:
        raise InvalidLoadPlanError(
            f"--rate: {rate:g}/s for {duration_s:g}s sends no request; raise it"
        )


def fault_schedule(
    duration_s: float, faults: Sequence[FaultKind] = ALL_FAULTS
) -> list[ScheduledFault]:
    """The faults evenly spread over the run, none at its very start or end: fault ``i``
    (0-based) of ``k`` at ``duration * (i + 1) / (k + 1)``."""
    k = len(faults)
    return [ScheduledFault(kind, duration_s * (i + 1) / (k + 1)) for i, kind in enumerate(faults)]


def window_span_s(duration_s: float, faults: int) -> float:
    """How far before a fault and after its recovery its windows reach: half the gap
    between faults (so neighbours' windows do not overlap), at most ``MAX_WINDOW_S``."""
    return min(duration_s / (faults + 1) / 2, MAX_WINDOW_S)


# -- the report -------------------------------------------------------------------------


def outcomes(records: Iterable[RequestRecord]) -> Outcomes:
    sent = answered = 0
    failed: Counter[str] = Counter()
    lost: list[str] = []
    for record in records:
        sent += 1
        if record.ended_s is None or record.code is None:
            lost.append(record.request_id)
        elif record.code == OK:
            answered += 1
        else:
            failed[record.code] += 1
    return Outcomes(sent, answered, dict(sorted(failed.items())), lost)


def duplicates(
    completions: Iterable[tuple[str, str]], feedback: Iterable[tuple[str, str, str]]
) -> Duplicates:
    """``completions``: (request id, event id) per completion record seen; ``feedback``:
    (request id, candidate id, event id) per feedback record seen."""
    completion_ids: dict[str, set[str]] = defaultdict(set)
    feedback_ids: dict[str, set[str]] = defaultdict(set)
    seen: Counter[str] = Counter()
    for request_id, event_id in completions:
        completion_ids[request_id].add(event_id)
        seen[event_id] += 1
    for request_id, candidate_id, event_id in feedback:
        feedback_ids[f"{request_id}/{candidate_id}"].add(event_id)
        seen[event_id] += 1
    return Duplicates(
        answered_twice=sorted(r for r, ids in completion_ids.items() if len(ids) > 1),
        feedback_twice=sorted(c for c, ids in feedback_ids.items() if len(ids) > 1),
        replayed_records=sum(n - 1 for n in seen.values()),
    )


def recovery_s(fault_at_s: float, records: Iterable[RequestRecord]) -> float | None:
    """From the fault to the answer of the first request sent at or after it that was
    answered OK (the earliest such answer); None if none was."""
    answers = [
        r.ended_s
        for r in records
        if r.code == OK and r.ended_s is not None and r.sent_s >= fault_at_s
    ]
    return min(answers) - fault_at_s if answers else None


def window(records: Iterable[RequestRecord], start_s: float, end_s: float) -> Window:
    """The requests sent in [start_s, end_s): how many, how they ended, OK latencies."""
    inside = [r for r in records if start_s <= r.sent_s < end_s]
    latencies = [r.latency_s for r in inside if r.code == OK and r.latency_s is not None]
    failed = Counter(r.code or "LOST" for r in inside if r.code != OK)
    return Window(
        start_s=start_s,
        end_s=end_s,
        sent=len(inside),
        answered=len(latencies),
        failed=dict(sorted(failed.items())),
        p50_ms=percentile(latencies, 0.5) * 1000 if latencies else None,
        p99_ms=percentile(latencies, 0.99) * 1000 if latencies else None,
    )


def fault_report(
    fault: InjectedFault, records: Sequence[RequestRecord], *, span_s: float, run_end_s: float
) -> FaultReport:
    recovered = recovery_s(fault.at_s, records)
    recovered_at = fault.at_s + recovered if recovered is not None else run_end_s
    return FaultReport(
        kind=fault.kind,
        at_s=fault.at_s,
        detail=fault.detail,
        recovery_s=recovered,
        before=window(records, max(0.0, fault.at_s - span_s), fault.at_s),
        during=window(records, fault.at_s, recovered_at),
        after=window(records, recovered_at, recovered_at + span_s),
    )


def dead_letter_counts(letters: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """(dead-letter topic, error type) per letter -> topic -> error type -> count."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for topic, error_type in letters:
        counts[topic][error_type] += 1
    return {topic: dict(sorted(c.items())) for topic, c in sorted(counts.items())}
