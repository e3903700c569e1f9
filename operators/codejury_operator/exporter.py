"""The traffic exporter: ``codejury.feedback`` and ``codejury.solve.completed`` counted into
the ``<run>-traffic`` ConfigMap that ``traffic.ConfigMapTrafficSource`` reads.

It counts with ``codejury.runtime.meter.TrafficMeter``, the same counter the local runtime
(``codejury run``) observes with, over the run's own status (the canary step's start, the
stable and canary versions, the end of the last iteration), so a canary is judged on the
same numbers in a cluster as on one machine. It runs beside the operator (a sidecar or
its own Deployment: ``codejury traffic-exporter``), one per run.

When the run's status names no stable version yet (before its first promotion), the
stable arm is the version that ranked most of the requests since the step started,
other than the canary: the version that served before the run.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from typing import Any

from codejury.control.status import RunStatus
from codejury.runtime.meter import TrafficMeter

from codejury_operator.conditions import read_status
from codejury_operator.kube import KubeClient, Ref
from codejury_operator.settings import GROUP, PLURAL, VERSION
from codejury_operator.traffic import traffic_configmap_name


def traffic_data(meter: TrafficMeter, status: RunStatus, now: datetime) -> dict[str, str]:
    """The ConfigMap's ``data`` for a run in ``status`` (see ``traffic``'s docstring)."""
    since = status.step_started_at or now
    stable = status.stable_version or _previous_stable(meter, since, status.canary_version)
    traffic = meter.traffic(since, stable, status.canary_version)
    data = {
        "since": since.isoformat(),
        "stable": json.dumps(asdict(traffic.stable), sort_keys=True),
        "canary": json.dumps(asdict(traffic.canary), sort_keys=True),
        "hard_negatives": str(meter.hard_negatives_since(status.iteration_finished_at)),
    }
    if status.iteration_finished_at is not None:
        data["hard_negatives_since"] = status.iteration_finished_at.isoformat()
    return data


def _previous_stable(meter: TrafficMeter, since: datetime, canary: str | None) -> str | None:
    served: Counter[str] = meter.versions_since(since)
    served.pop(canary or "", None)
    served.pop("", None)
    return served.most_common(1)[0][0] if served else None


class TrafficExporter:
    """Writes one run's ConfigMap from a meter that follows the bus."""

    def __init__(self, client: KubeClient, meter: TrafficMeter, namespace: str, run: str) -> None:
        self.client = client
        self.meter = meter
        self.namespace = namespace
        self.run = run

    def export_once(self, now: datetime) -> dict[str, str]:
        run = self.client.get(Ref(f"{GROUP}/{VERSION}", PLURAL, self.namespace, self.run))
        data = traffic_data(self.meter, read_status(run.get("status")), now)
        name = traffic_configmap_name(self.run)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {"codejury.io/run": self.run},
                "ownerReferences": [_owner(run)],
            },
            "data": data,
        }
        self.client.ensure(Ref("v1", "configmaps", self.namespace, name), body)
        return data


def _owner(run: dict[str, Any]) -> dict[str, Any]:
    meta = run["metadata"]
    return {
        "apiVersion": run.get("apiVersion", f"{GROUP}/{VERSION}"),
        "kind": run.get("kind", "SelfTrainingRun"),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": False,
    }
