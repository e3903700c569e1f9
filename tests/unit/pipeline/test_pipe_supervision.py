"""codejury up's restart rule: doubling delays, capped; a long-lived service starts the
count again; a failed start counts as one more attempt."""

from __future__ import annotations

import pytest
from codejury.pipeline.supervision import (
    MAX_DELAY_S,
    STABLE_AFTER_S,
    Outage,
    outage_after_exit,
    outage_after_failed_start,
    restart_delay_s,
)


@pytest.mark.parametrize(
    ("attempt", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, MAX_DELAY_S), (40, 30.0)]
)
def test_delays_double_up_to_the_cap(attempt: int, delay: float) -> None:
    assert restart_delay_s(attempt) == delay


def test_a_crash_soon_after_a_restart_waits_longer_than_the_last() -> None:
    first = outage_after_exit("exited with code -9", now=100.0, up_for_s=500.0, previous_attempt=0)
    assert (first.attempt, first.retry_at) == (1, 101.0)
    # it came back from attempt 1 and died 5 s later: the same failure repeating
    again = outage_after_exit("exited with code 1", now=200.0, up_for_s=5.0, previous_attempt=1)
    assert (again.attempt, again.retry_at) == (2, 202.0)


def test_a_service_that_ran_long_enough_starts_the_count_again() -> None:
    outage = outage_after_exit("x", now=0.0, up_for_s=STABLE_AFTER_S, previous_attempt=7)
    assert outage.attempt == 1


def test_a_start_that_fails_is_the_next_attempt_and_keeps_the_reason() -> None:
    later = outage_after_failed_start(Outage("exited with code 2", 3, 10.0), now=50.0)
    assert later == Outage("exited with code 2", 4, 58.0)
