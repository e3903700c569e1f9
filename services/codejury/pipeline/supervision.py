"""When ``codejury up`` starts a dead service again (pure).

A service that exits is started again after a delay that doubles with each consecutive
failure (1 s, 2 s, 4 s ... up to 30 s), so a service that cannot start does not spin, and
one that crashed once is back within a second. A service that stayed up for
``STABLE_AFTER_S`` before dying starts the count again: its failure is new, not the same
one repeating.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_DELAY_S = 1.0
MAX_DELAY_S = 30.0
STABLE_AFTER_S = 60.0


@dataclass(frozen=True)
class Outage:
    """A service that is down: why, which consecutive attempt the next start is, and when
    (a ``time.monotonic()`` time) it may be tried."""

    why: str
    attempt: int
    retry_at: float


def restart_delay_s(attempt: int) -> float:
    """The wait before the ``attempt``-th consecutive start (1-based)."""
    return min(BASE_DELAY_S * 2.0 ** (attempt - 1), MAX_DELAY_S)


def outage_after_exit(why: str, *, now: float, up_for_s: float, previous_attempt: int) -> Outage:
    """The outage of a service that just exited after running ``up_for_s`` seconds;
    ``previous_attempt``: the attempt its current run came from (0: its first start)."""
    attempt = 1 if up_for_s >= STABLE_AFTER_S else previous_attempt + 1
    return Outage(why, attempt, now + restart_delay_s(attempt))


def outage_after_failed_start(outage: Outage, *, now: float) -> Outage:
    """The same outage, one attempt later, after a start that failed."""
    attempt = outage.attempt + 1
    return Outage(outage.why, attempt, now + restart_delay_s(attempt))
