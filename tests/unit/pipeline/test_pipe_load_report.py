"""``codejury bench load``'s arithmetic, on cases small enough to check by hand."""

from __future__ import annotations

import pytest
from codejury.pipeline.errors import InvalidLoadPlanError
from codejury.pipeline.load_report import (
    ALL_FAULTS,
    OK,
    Duplicates,
    FaultKind,
    InjectedFault,
    LoadReport,
    Outcomes,
    RequestRecord,
    check_plan,
    dead_letter_counts,
    duplicates,
    fault_report,
    fault_schedule,
    outcomes,
    recovery_s,
    window,
    window_span_s,
)


def rec(i: int, sent: float, latency: float | None, code: str | None = OK) -> RequestRecord:
    ended = None if latency is None else sent + latency
    return RequestRecord(f"r{i}", sent, ended, code if ended is not None else None)


# -- the plan ---------------------------------------------------------------------------


def test_faults_are_spread_evenly_inside_the_run() -> None:
    kinds = [FaultKind.KILL_GENERATION, FaultKind.KILL_WORKER, FaultKind.BAD_EVENTS]
    schedule = fault_schedule(80, kinds)
    assert [f.at_s for f in schedule] == [20, 40, 60]
    assert [f.kind for f in schedule] == kinds


def test_the_default_schedule_breaks_everything_once_in_order() -> None:
    schedule = fault_schedule(600)
    assert [f.kind for f in schedule] == list(ALL_FAULTS)
    assert schedule[0].at_s == 75 and schedule[-1].at_s == 525  # 600 / 8 apart


def test_window_span_is_half_the_gap_capped() -> None:
    assert window_span_s(160, 7) == 10  # gap 20 s
    assert window_span_s(3600, 7) == 60  # gap 450 s, capped


@pytest.mark.parametrize(
    ("duration", "rate", "match"),
    [
        (60, 0.5, r"--duration: 60s is outside \[120, 3600\]"),
        (7200, 0.5, r"--duration: 7200s is outside"),
        (600, 0, r"--rate: 0 requests/s is outside \(0, 10\]"),
        (600, 50, r"--rate: 50 requests/s"),
        (120, 0.001, r"--rate: 0.001/s for 120s sends no request"),
    ],
)
def test_a_plan_out_of_bounds_is_refused_naming_the_option(
    duration: float, rate: float, match: str
) -> None:
    with pytest.raises(InvalidLoadPlanError, match=match):
        check_plan(duration, rate)


def test_too_many_faults_for_the_duration_are_refused_with_the_length_needed() -> None:
    with pytest.raises(InvalidLoadPlanError, match=r"run at least 225s"):
        check_plan(200, 1, list(ALL_FAULTS) * 2)  # 14 faults: 13.3 s apart, 15 needed
    check_plan(120, 1)  # 7 faults, 15 s apart: the shortest run allowed


# -- outcomes and duplicates ------------------------------------------------------------


def test_outcomes_count_answers_failures_by_code_and_the_lost() -> None:
    records = [
        rec(1, 0, 1.0),
        rec(2, 1, 0.1, "UNAVAILABLE"),
        rec(3, 2, 0.2, "UNAVAILABLE"),
        rec(4, 3, 90.0, "DEADLINE_EXCEEDED"),
        rec(5, 4, None),  # no reply, no error
        rec(6, 5, 2.0),
    ]
    got = outcomes(records)
    assert (got.sent, got.answered, got.lost) == (6, 2, ["r5"])
    assert got.failed == {"DEADLINE_EXCEEDED": 1, "UNAVAILABLE": 2}
    assert got.failed_total == 3


def test_a_replayed_record_is_not_an_answer_twice_but_a_second_event_id_is() -> None:
    completions = [("a", "e1"), ("a", "e1"), ("b", "e2"), ("b", "e3"), ("c", "e4")]
    feedback = [("a", "c0", "f1"), ("a", "c0", "f1"), ("a", "c1", "f2"), ("b", "c0", "f3")]
    feedback += [("b", "c0", "f4")]
    got = duplicates(completions, feedback)
    assert got.answered_twice == ["b"]  # a: the same completion replayed; b: two of them
    assert got.feedback_twice == ["b/c0"]
    assert got.replayed_records == 2  # e1 and f1 once more each


# -- recovery and windows ---------------------------------------------------------------


def test_recovery_is_the_first_ok_answer_of_a_request_sent_after_the_fault() -> None:
    records = [
        rec(1, 8, 5.0),  # in flight at the fault (10 s), answered at 13: proves nothing
        rec(2, 10, 0.1, "UNAVAILABLE"),
        rec(3, 12, 0.1, "UNAVAILABLE"),
        rec(4, 14, 6.0),  # answered at 20
        rec(5, 16, 2.0),  # answered at 18: the first answer after the fault
        rec(6, 18, 1.0),  # answered at 19
    ]
    assert recovery_s(10, records) == 8.0
    assert recovery_s(30, records) is None


def test_a_window_takes_the_requests_sent_in_it_and_the_ok_latencies() -> None:
    records = [rec(i, float(i), latency) for i, latency in enumerate([1, 2, 3, 4])]
    records.append(rec(9, 2.5, 0.1, "UNAVAILABLE"))
    records.append(rec(10, 2.6, None))
    got = window(records, 1, 3)  # sent at 1, 2 (OK), 2.5 (failed), 2.6 (lost); not 3
    assert (got.sent, got.answered) == (4, 2)
    assert got.failed == {"LOST": 1, "UNAVAILABLE": 1}
    assert (got.p50_ms, got.p99_ms) == (2000, 3000)  # nearest rank over [2, 3] s
    empty = window(records, 50, 60)
    assert (empty.sent, empty.p50_ms, empty.p99_ms) == (0, None, None)


def test_a_fault_s_windows_are_before_it_until_recovery_and_after() -> None:
    records = [
        rec(1, 0, 1.0),
        rec(2, 5, 3.0),
        rec(3, 10, 0.1, "UNAVAILABLE"),  # fault at 10
        rec(4, 12, 4.0),  # answered at 16: recovered in 6 s
        rec(5, 14, 2.5),
        rec(6, 17, 0.5),
        rec(7, 40, 0.5),  # beyond the after window
    ]
    fault = InjectedFault(FaultKind.KILL_EXECUTION, 10, "pid 1")
    got = fault_report(fault, records, span_s=10, run_end_s=60)
    assert got.recovery_s == 6
    assert (got.before.start_s, got.before.end_s, got.before.sent) == (0, 10, 2)
    assert got.before.p50_ms == 1000 and got.before.p99_ms == 3000
    assert (got.during.start_s, got.during.end_s, got.during.sent) == (10, 16, 3)
    assert got.during.failed == {"UNAVAILABLE": 1} and got.during.answered == 2
    assert (got.after.start_s, got.after.end_s, got.after.sent) == (16, 26, 1)
    assert got.after.p99_ms == 500


def test_a_fault_never_recovered_is_during_until_the_end() -> None:
    records = [rec(1, 0, 1.0), rec(2, 11, 0.1, "UNAVAILABLE"), rec(3, 20, None)]
    got = fault_report(
        InjectedFault(FaultKind.KILL_MODEL_SERVER, 10), records, span_s=5, run_end_s=30
    )
    assert got.recovery_s is None
    assert (got.during.end_s, got.during.sent, got.during.failed) == (
        30,
        2,
        {"LOST": 1, "UNAVAILABLE": 1},
    )
    assert got.after.sent == 0


def test_dead_letters_are_counted_by_topic_and_error_type() -> None:
    letters = [("t.dlq", "EnvelopeError"), ("t.dlq", "EnvelopeError"), ("u.dlq", "TypeError")]
    assert dead_letter_counts(letters) == {
        "t.dlq": {"EnvelopeError": 2},
        "u.dlq": {"TypeError": 1},
    }


def test_a_report_passes_only_with_nothing_lost_twice_or_unrecovered() -> None:
    clean = outcomes([rec(1, 0, 1.0)])
    no_dups = Duplicates([], [], 3)
    recovered = fault_report(
        InjectedFault(FaultKind.KILL_WORKER, 0), [rec(1, 0, 1.0)], span_s=5, run_end_s=10
    )

    def report(o: Outcomes, d: Duplicates, probes: dict[str, str]) -> LoadReport:
        return LoadReport(10, 1, o, d, [recovered], {}, probes=probes)

    assert report(clean, no_dups, {"n=0": "INVALID_ARGUMENT"}).passed
    assert not report(outcomes([rec(1, 0, None)]), no_dups, {}).passed
    assert not report(clean, Duplicates(["r1"], [], 0), {}).passed
    assert not report(clean, no_dups, {"n=0": OK}).passed
