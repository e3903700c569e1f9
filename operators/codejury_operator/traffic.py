"""Where the operator reads the canary's traffic and the new hard negatives from.

``TrafficSource`` is the interface ``handlers`` depends on. The source that ships here,
``ConfigMapTrafficSource`` (the default), reads a ConfigMap per run, ``<run>-traffic``, that
``exporter.TrafficExporter`` (``codejury traffic-exporter``) writes from the bus:

    data:
      since: "2026-01-02T03:04:05+00:00"   # the counts start here (the step's start)
      stable: '{"requests": 1200, "errors": 3, "labelled": 1100, "passed": 560,
                "p99_latency_ms": 140.0}'
      canary: '{"requests": 1100, "errors": 2, "labelled": 1050, "passed": 540}'
      hard_negatives: "12"                  # new since the last iteration ended
      hard_negatives_since: "..."           # optional: when that count started

Counts from before the current step (``since`` earlier than the status's
``step_started_at``) are passed on as they are: ``reconcile`` waits on them and says so.
A malformed ConfigMap is an ``InvalidRunError`` naming the key. The other source,
``prometheus.PrometheusTrafficSource``, queries the reranking stage's counters instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from codejury.control.errors import InvalidObservationError
from codejury.control.observations import ArmStats, CanaryTraffic
from codejury.control.status import RunStatus

from codejury_operator.errors import InvalidRunError
from codejury_operator.kube import KubeClient, Ref


class TrafficSource(Protocol):
    def traffic(self, namespace: str, run: str, status: RunStatus) -> CanaryTraffic | None:
        """Both arms' counts since the current canary step started (``status`` names the
        step's start and the versions), or None (no data)."""
        ...

    def hard_negatives(self, namespace: str, run: str, since: datetime | None) -> int:
        """Hard negatives stored since ``since`` (the end of the last iteration)."""
        ...


def traffic_configmap_name(run: str) -> str:
    return f"{run}-traffic"


class ConfigMapTrafficSource:
    """Reads ``<run>-traffic`` (see the module docstring)."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client

    def _data(self, namespace: str, run: str) -> Mapping[str, str] | None:
        ref = Ref("v1", "configmaps", namespace, traffic_configmap_name(run))
        found = self._client.find(ref)
        return None if found is None else dict(found.get("data") or {})

    def traffic(self, namespace: str, run: str, status: RunStatus) -> CanaryTraffic | None:
        # the exporter read the status when it counted: the ConfigMap says it all
        data = self._data(namespace, run)
        if not data or "since" not in data:
            return None
        where = f"configmap {namespace}/{traffic_configmap_name(run)}"
        return parse_traffic(data, where)

    def hard_negatives(self, namespace: str, run: str, since: datetime | None) -> int:
        data = self._data(namespace, run) or {}
        raw = data.get("hard_negatives")
        if raw is None:
            return 0
        where = f"configmap {namespace}/{traffic_configmap_name(run)}"
        counted_from = data.get("hard_negatives_since")
        if since is not None and counted_from and _time(counted_from, where) < since:
            return 0  # counted from before the last iteration ended: stale
        try:
            count = int(raw)
        except ValueError:
            count = -1
        if count < 0:
            raise InvalidRunError(f"{where}: data.hard_negatives={raw!r}: not a count >= 0")
        return count


def parse_traffic(data: Mapping[str, str], where: str) -> CanaryTraffic:
    since = _time(data["since"], where)
    return CanaryTraffic(
        since=since,
        stable=_arm(data.get("stable"), f"{where}: data.stable"),
        canary=_arm(data.get("canary"), f"{where}: data.canary"),
    )


def _time(value: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRunError(f"{where}: {value!r} is not an ISO 8601 time with a timezone")
    return moment


def _arm(raw: str | None, where: str) -> ArmStats:
    if raw is None:
        return ArmStats()
    try:
        fields: Any = json.loads(raw)
    except ValueError as exc:
        raise InvalidRunError(f"{where}={raw!r}: not JSON") from exc
    allowed = {"requests", "errors", "labelled", "passed", "p99_latency_ms"}
    if not isinstance(fields, dict) or not set(fields) <= allowed:
        raise InvalidRunError(f"{where}={raw!r}: expected an object with keys {sorted(allowed)}")
    try:
        return ArmStats(**fields)
    except (InvalidObservationError, TypeError) as exc:
        raise InvalidRunError(f"{where}: {exc}") from exc
