"""The stage health watch's verdict (pure): down only after every check for the grace,
and at least two, failed; up again at the first SERVING answer."""

from __future__ import annotations

from codejury.pipeline.stage_watch import MIN_FAILURES, Check, Seen, StageHealth, down_reason

GRACE = 6.0


def _after(*checks: tuple[float, Seen]) -> StageHealth:
    health = StageHealth()
    for at, seen in checks:
        health = health.after(Check(at, seen, f"{seen.value} at {at:g}"))
    return health


def test_a_stage_never_checked_or_serving_is_up() -> None:
    assert down_reason(StageHealth(), down_after_s=GRACE) is None
    assert down_reason(_after((0, Seen.SERVING), (2, Seen.SERVING)), down_after_s=GRACE) is None


def test_one_missed_check_is_not_an_outage_however_long_ago_it_began() -> None:
    """A single failure never counts, even where the grace is shorter than the interval."""
    assert MIN_FAILURES == 2
    once = _after((0, Seen.SERVING), (2, Seen.UNREACHABLE))
    assert down_reason(once, down_after_s=0.0) is None


def test_failures_shorter_than_the_grace_are_not_an_outage() -> None:
    blip = _after((0, Seen.NOT_SERVING), (2, Seen.UNREACHABLE), (4, Seen.NOT_SERVING))
    assert blip.failures == 3 and blip.failing_since == 0
    assert down_reason(blip, down_after_s=GRACE) is None


def test_every_check_failing_for_the_grace_is_down_saying_what_the_last_one_saw() -> None:
    health = _after(
        (0, Seen.SERVING), (2, Seen.NOT_SERVING), (4, Seen.UNREACHABLE), (8, Seen.UNREACHABLE)
    )
    why = down_reason(health, down_after_s=GRACE)
    assert why == "unreachable at 8, every health check for 6.0s"


def test_a_stage_that_never_answered_counts_from_the_first_check() -> None:
    """A stage still loading its model (or never deployed) is down once the grace passed."""
    health = _after((10, Seen.UNREACHABLE), (12, Seen.UNREACHABLE), (16, Seen.UNREACHABLE))
    assert down_reason(health, down_after_s=GRACE) is not None
    assert down_reason(health, down_after_s=GRACE + 0.1) is None


def test_one_serving_answer_ends_an_outage_and_the_next_failures_count_afresh() -> None:
    down = _after(*((t, Seen.NOT_SERVING) for t in range(0, 20, 2)))
    assert down_reason(down, down_after_s=GRACE) is not None
    back = down.after(Check(20, Seen.SERVING, "SERVING"))
    assert back == StageHealth(last=Check(20, Seen.SERVING, "SERVING"))
    assert down_reason(back, down_after_s=GRACE) is None
    again = back.after(Check(22, Seen.UNREACHABLE, "x")).after(Check(24, Seen.UNREACHABLE, "x"))
    assert again.failing_since == 22 and down_reason(again, down_after_s=GRACE) is None
