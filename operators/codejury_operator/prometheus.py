"""The canary's traffic from Prometheus, as Flagger and Argo Rollouts analyse canaries: a
PromQL query per reranker version over the current canary step, instead of (or beside) the
``<run>-traffic`` ConfigMap the traffic exporter writes.

Over the window from the status's ``step_started_at`` to now, per reranker ``version``:

    requests  sum by (version) (increase(codejury_reranker_requests_total{SEL}[W]))
    labelled  sum by (version) (increase(codejury_reranker_picks_total{SEL,
                                          outcome=~"passed|failed"}[W]))
    passed    sum by (version) (increase(codejury_reranker_picks_total{SEL,outcome="passed"}[W]))

``SEL`` narrows the series to this deployment (default: the run's namespace, the label a
PodMonitor adds). The counters are the reranking stage's (``core.metrics``); ``picks`` are
the reward model's own picks with the label their feedback gets, so the pass rates are the
ones ``codejury run`` and the exporter count. Like the exporter, a run that has promoted
nothing yet takes as its stable arm the version, other than the canary, that ranked the
most requests in the window. ``increase`` extrapolates to the window's edges: counts are
rounded, and what arrives before the first scrape inside the step's window is missed (as
in Flagger: keep the scrape interval well below the canary's step).

Not in Prometheus: the per-version error count and p99 latency (the arms report 0 errors
and no latency, so those guards pass; the Solve error ratio is on the dashboard), and the
hard negatives of the trigger, which come from ``hard_negatives_from`` (the ConfigMap).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from codejury.control.observations import ArmStats, CanaryTraffic
from codejury.control.status import RunStatus

from codejury_operator.errors import MetricsQueryError
from codejury_operator.traffic import TrafficSource

#: Label matchers of a run's series; ``{namespace}`` and ``{run}`` are the run's.
DEFAULT_SELECTOR = 'namespace="{namespace}"'

#: The counter names this source reads (a test keeps them equal to ``core.metrics``).
REQUESTS = "codejury_reranker_requests_total"
PICKS = "codejury_reranker_picks_total"


def queries(selector: str, window_s: int) -> dict[str, str]:
    """The PromQL of each count (pure); ``selector`` is label matchers without braces."""
    sel = f"{selector}," if selector else ""
    window = f"[{max(1, window_s)}s]"
    return {
        "requests": f"sum by (version) (increase({REQUESTS}{{{selector}}}{window}))",
        "labelled": (
            f'sum by (version) (increase({PICKS}{{{sel}outcome=~"passed|failed"}}{window}))'
        ),
        "passed": f'sum by (version) (increase({PICKS}{{{sel}outcome="passed"}}{window}))',
    }


def arms_of(
    counts: dict[str, dict[str, float]], stable: str | None, canary: str
) -> tuple[ArmStats, ArmStats]:
    """(stable, canary) from ``counts[what][version]`` (pure). Without a stable version,
    the one other than the canary that ranked the most requests is the stable arm."""
    if stable is None:
        others = {v: n for v, n in counts.get("requests", {}).items() if v != canary}
        stable = max(others, key=lambda v: (others[v], v)) if others else None

    def arm(version: str | None) -> ArmStats:
        if version is None:
            return ArmStats()

        def count(what: str) -> int:
            return max(0, round(counts.get(what, {}).get(version, 0.0)))

        # extrapolated counts can disagree by one: keep passed <= labelled <= requests
        labelled = count("labelled")
        return ArmStats(
            requests=max(count("requests"), labelled),
            labelled=labelled,
            passed=min(count("passed"), labelled),
        )

    return arm(stable), arm(canary)


class PrometheusTrafficSource:
    """A ``TrafficSource`` over Prometheus's HTTP API (``GET /api/v1/query``)."""

    def __init__(
        self,
        url: str,
        *,
        hard_negatives_from: TrafficSource,
        selector: str = DEFAULT_SELECTOR,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._hard_negatives_from = hard_negatives_from
        self._selector = selector
        self._client = client or httpx.Client(timeout=timeout_s)
        self._clock = clock

    def close(self) -> None:
        self._client.close()

    def traffic(self, namespace: str, run: str, status: RunStatus) -> CanaryTraffic | None:
        if status.canary_version is None or status.step_started_at is None:
            return None
        window_s = int((self._clock() - status.step_started_at).total_seconds()) + 1
        counts = {
            what: self._query(promql)
            for what, promql in queries(
                self._selector.format(namespace=namespace, run=run), window_s
            ).items()
        }
        stable, canary = arms_of(counts, status.stable_version, status.canary_version)
        return CanaryTraffic(since=status.step_started_at, stable=stable, canary=canary)

    def hard_negatives(self, namespace: str, run: str, since: datetime | None) -> int:
        return self._hard_negatives_from.hard_negatives(namespace, run, since)

    def _query(self, promql: str) -> dict[str, float]:
        """version -> value of an instant vector query."""
        where = f"Prometheus at {self.url}"
        try:
            response = self._client.get(f"{self.url}/api/v1/query", params={"query": promql})
        except httpx.HTTPError as exc:
            raise MetricsQueryError(f"{where}: {exc}; is --prometheus-url right?") from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else response.text[:200]
            raise MetricsQueryError(
                f"{where} answered {response.status_code} to {promql!r}: {error}",
                status=response.status_code,
            )
        values: dict[str, float] = {}
        for series in body.get("data", {}).get("result", []):
            version = series.get("metric", {}).get("version")
            if version:
                values[version] = float(series["value"][1])
        return values
