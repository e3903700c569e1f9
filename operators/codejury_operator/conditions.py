"""The run's status subresource and its Events, from ``RunStatus`` and ``EmitEvent``.

The status subresource holds:

    status.run                 RunStatus.to_dict(): the state machine's memory, read back
                               with RunStatus.from_dict (``read_status``)
    status.phase, .iteration, .stableVersion, .canaryVersion, .canaryWeight
                               a summary for ``kubectl get`` (the printer columns)
    status.conditions          Ready / Progressing / Degraded, Kubernetes style
                               (camelCase, RFC 3339 times, observedGeneration)
    status.observedGeneration  the spec generation the status was computed from

The status is written with a merge patch, in which a None value deletes the key; so a
key of ``status.run`` that ``to_dict`` wrote as None is absent when read back, and
``read_status`` puts it back as None before ``from_dict``.
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

# Keys of RunStatus.to_dict() (and of its records) that may be None, so may be absent.
_OPTIONAL = ("stable_version", "canary_version", "canary_step", "step_started_at",
             "iteration_finished_at")  # fmt: skip
_OPTIONAL_ITEM = {
    "iterations": ("version", "outcome", "finished_at"),
    "history": ("version", "weight"),
}


def rfc3339(moment: datetime) -> str:
    """``2026-01-02T03:04:05Z``: the form Kubernetes writes (seconds, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kube_conditions(status: RunStatus, generation: int | None = None) -> list[dict[str, Any]]:
    """The RunStatus conditions as ``metav1.Condition`` objects."""
    out = []
    for c in status.conditions:
        condition: dict[str, Any] = {
            "type": c.type.value,
            "status": c.status.value,
            "reason": c.reason,
            "message": c.message[:32768],
            "lastTransitionTime": rfc3339(c.last_transition_time),
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        out.append(condition)
    return out


def status_patch(status: RunStatus, generation: int | None = None) -> dict[str, Any]:
    """The merge patch of the status subresource for ``status``."""
    patch: dict[str, Any] = {
        "run": status.to_dict(),
        "phase": status.phase.value,
        "iteration": status.iteration,
        "stableVersion": status.stable_version,
        "canaryVersion": status.canary_version,
        "canaryWeight": status.canary_weight,
        "conditions": kube_conditions(status, generation),
    }
    if generation is not None:
        patch["observedGeneration"] = generation
    return patch


def read_status(raw: object) -> RunStatus:
    """The RunStatus saved in a run's ``status`` (a new run: ``RunStatus()``)."""
    if not isinstance(raw, Mapping) or not raw.get("run"):
        return RunStatus()
    saved = raw["run"]
    if not isinstance(saved, Mapping):
        raise InvalidRunError(f"status.run={saved!r}: not a mapping; clear status.run to restart")
    filled: dict[str, Any] = {key: None for key in _OPTIONAL} | dict(saved)
    for key, optional in _OPTIONAL_ITEM.items():
        items = filled.get(key)
        if isinstance(items, list):
            filled[key] = [
                {k: None for k in optional} | dict(item) if isinstance(item, Mapping) else item
                for item in items
            ]
    for item in filled.get("iterations") or []:
        if isinstance(item, dict):
            item.setdefault("metrics", {})
    try:
        return RunStatus.from_dict(filled, "status.run")
    except InvalidStatusError as exc:
        raise InvalidRunError(
            f"{exc}; the status was not written by this operator: clear status.run to restart "
            "the run from Pending"
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
