"""The run's status subresource and its Events, from ``RunStatus`` and ``EmitEvent``.

The status subresource is ``RunStatus.to_dict()`` (camelCase; the CRD's status schema is
generated from the same dataclasses by ``codejury.control.crd``), plus:

    status.observedGeneration               the spec generation it was computed from
    status.conditions[].observedGeneration  the same, per condition (``metav1.Condition``)

Its top-level fields are the printer columns (phase, iteration, stableVersion, ...).

The status is written with a merge patch, in which a None value deletes the key: a field
that became None is absent when read back, and ``from_dict`` reads absence as None. Inside
list items (iterations, history, conditions) None values are left out, since the API
server's schema has no nulls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from codejury.control.actions import EmitEvent, EventType, RecordMetrics
from codejury.control.errors import InvalidStatusError
from codejury.control.status import RunStatus

from codejury_operator.errors import InvalidRunError
from codejury_operator.settings import API_VERSION, KIND

COMPONENT = "codejury-operator"
# metav1.Condition's limit on a message.
_MESSAGE_LIMIT = 32768


def rfc3339(moment: datetime) -> str:
    """``2026-01-02T03:04:05Z``: the form Kubernetes writes (seconds, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(status: RunStatus, generation: int | None = None) -> dict[str, Any]:
    """The merge patch of the status subresource for ``status``."""
    patch = status.to_dict()
    for key in ("iterations", "history", "conditions"):
        patch[key] = [{k: v for k, v in item.items() if v is not None} for item in patch[key]]
    for condition in patch["conditions"]:
        condition["message"] = condition["message"][:_MESSAGE_LIMIT]
        if generation is not None:
            condition["observedGeneration"] = generation
    if generation is not None:
        patch["observedGeneration"] = generation
    return patch


def read_status(raw: object) -> RunStatus:
    """The RunStatus saved in a run's ``status`` (a new run: ``RunStatus()``)."""
    if not isinstance(raw, Mapping) or not raw.get("phase"):
        return RunStatus()
    saved = {k: v for k, v in raw.items() if k != "observedGeneration"}
    if isinstance(saved.get("conditions"), list):
        saved["conditions"] = [
            {k: v for k, v in c.items() if k != "observedGeneration"}
            if isinstance(c, Mapping)
            else c
            for c in saved["conditions"]
        ]
    try:
        return RunStatus.from_dict(saved, "status")
    except InvalidStatusError as exc:
        raise InvalidRunError(
            f"{exc}; the status was not written by this operator: clear the run's status "
            "(kubectl patch --subresource=status --type=merge -p '{\"status\":null}') to "
            "restart it from Pending"
        ) from exc


def build_event(
    run: Mapping[str, Any],
    action: EmitEvent | RecordMetrics,
    now: datetime,
    *,
    iteration: int,
) -> dict[str, Any]:
    """A ``v1`` Event on the run. Its name is a hash of what it says, so applying the same
    action twice (after a crash) is a conflict, not a second event."""
    meta = run["metadata"]
    if isinstance(action, RecordMetrics):
        kind, reason = EventType.NORMAL, "MetricsRecorded"
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(action.metrics.items()))
        message = (
            f"iteration {action.iteration} trained {action.version}: {metrics or 'no metrics'}"
        )
    else:
        kind, reason, message = action.type, action.reason, action.message
    digest = hashlib.sha256(
        "\0".join((meta.get("uid", ""), str(iteration), reason, message)).encode()
    ).hexdigest()[:16]
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name'][:200]}.{digest}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": kind.value,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "action": reason,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
