"""kopf handlers for SelfTrainingRun: observe, ``reconcile``, apply, write the status.

Every decision is ``codejury.control.reconcile``'s. On create, resume, a spec update and
every ``settings.tick_s`` (a kopf timer) the operator, under a per-run lock:

1. reads the run from the API (never a stale event body) and parses its spec and its
   saved status (``status``, a ``RunStatus``);
2. observes: the current attempt's Job and its pod (``jobs.observe_job``), the canary
   traffic and new hard negatives (a ``TrafficSource``), the time;
3. calls ``reconcile`` and applies its actions in order, each idempotent:

   | action | API calls |
   |---|---|
   | StartTrainingJob(i, a) | create Job ``<run>-i<i>-a<a>`` unless it exists |
   | SetCanary / Promote / Rollback | the KServe changes of ``inference`` (by mode) |
   | EmitEvent, RecordMetrics | create an Event on the run (named by a hash of it) |

4. writes the new status to the status subresource, after the actions: a crash between
   the two applies the same actions again on the next tick, which changes nothing.

On resume (operator start) the saved canary split is applied again before reconciling,
as the local runtime does. Deleting a run deletes its Jobs (a kopf finalizer, besides the
Jobs' ownerReferences, which the garbage collector follows in a real cluster).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from codejury.control.actions import (
    Action,
    EmitEvent,
    Promote,
    RecordMetrics,
    Rollback,
    SetCanary,
    StartTrainingJob,
)
from codejury.control.errors import InvalidSpecError
from codejury.control.observations import Observations
from codejury.control.reconcile import reconcile
from codejury.control.spec import SelfTrainingRunSpec, parse_spec
from codejury.control.status import Phase, RunStatus
from codejury.core import metrics

from codejury_operator.conditions import build_event, read_status, status_patch
from codejury_operator.errors import ApiError, InvalidRunError
from codejury_operator.inference import Ensure, Merge, Remove, Rollout, kserve_changes
from codejury_operator.jobs import build_job, job_name, observe_job, owner_reference, run_selector
from codejury_operator.kube import KubeClient, Ref
from codejury_operator.settings import GROUP, PLURAL, VERSION, OperatorSettings, run_target
from codejury_operator.traffic import TrafficSource

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunController:
    """Drives the runs of one operator process; the kopf handlers call into it."""

    settings: OperatorSettings
    client: KubeClient
    traffic: TrafficSource
    clock: Callable[[], datetime] = _utcnow
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)

    # -- refs --------------------------------------------------------------------------

    @staticmethod
    def run_ref(namespace: str, name: str) -> Ref:
        return Ref(f"{GROUP}/{VERSION}", PLURAL, namespace, name)

    @staticmethod
    def jobs_ref(namespace: str) -> Ref:
        return Ref("batch/v1", "jobs", namespace)

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    # -- the loop ----------------------------------------------------------------------

    def reconcile_run(
        self, namespace: str, name: str, *, restore: bool = False
    ) -> RunStatus | None:
        """One observe -> reconcile -> apply -> save pass; None when the run is gone."""
        try:
            status = self._reconcile_run(namespace, name, restore=restore)
        except Exception:
            metrics.RUN_RECONCILES.labels("error").inc()
            raise
        metrics.RUN_RECONCILES.labels("ok").inc()
        if status is None:
            forget_run(namespace, name)
        else:
            export_run(namespace, name, status)
        return status

    def _reconcile_run(self, namespace: str, name: str, *, restore: bool) -> RunStatus | None:
        with self._lock(namespace, name):
            run = self.client.find(self.run_ref(namespace, name))
            if run is None or run.get("metadata", {}).get("deletionTimestamp"):
                return None
            spec = self._spec(run)
            status = read_status(run.get("status"))
            if restore and status.phase is Phase.CANARY and status.canary_version:
                self.apply(run, status, SetCanary(status.canary_version, status.canary_weight))
            result = reconcile(spec, status, self.observe(run, status))
            for action in result.actions:
                self.apply(run, result.status, action)
            generation = run.get("metadata", {}).get("generation")
            saved = run.get("status") or {}
            if (
                result.status != status
                or "phase" not in saved  # a new run: its first status
                or saved.get("observedGeneration") != generation
            ):
                self.client.patch(
                    self.run_ref(namespace, name),
                    {"status": status_patch(result.status, generation)},
                    subresource="status",
                )
            return result.status

    def delete_jobs(self, namespace: str, name: str) -> int:
        """Delete the run's Jobs (and, by propagation, their pods); how many there were."""
        forget_run(namespace, name)
        jobs = self.client.list(self.jobs_ref(namespace), run_selector(name))
        for job in jobs:
            self.client.delete(
                self.jobs_ref(namespace).named(job["metadata"]["name"]), propagation="Foreground"
            )
        return len(jobs)

    # -- observing ---------------------------------------------------------------------

    def observe(self, run: dict[str, Any], status: RunStatus) -> Observations:
        meta = run["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        job = traffic = None
        new_hard_negatives = 0
        if status.phase is Phase.TRAINING:
            i, attempt = status.iteration, status.training_attempt
            jname = job_name(name, i, attempt)
            found = self.client.find(self.jobs_ref(namespace).named(jname))
            pods: list[dict[str, Any]] = []
            job_status = (found or {}).get("status") or {}
            if job_status.get("succeeded") or job_status.get("failed"):
                pods = self.client.list(Ref("v1", "pods", namespace), {"job-name": jname})
            job = observe_job(i, attempt, found, pods)
        elif status.phase is Phase.CANARY:
            traffic = self.traffic.traffic(namespace, name, status)
        elif status.phase is Phase.IDLE:
            new_hard_negatives = self.traffic.hard_negatives(
                namespace, name, status.iteration_finished_at
            )
        return Observations(
            now=self.clock(), job=job, traffic=traffic, new_hard_negatives=new_hard_negatives
        )

    # -- actions -----------------------------------------------------------------------

    def apply(self, run: dict[str, Any], status: RunStatus, action: Action) -> None:
        meta = run["metadata"]
        namespace = meta["namespace"]
        log.info("run %s/%s: %s", namespace, meta["name"], action)
        metrics.RUN_ACTIONS.labels(type(action).__name__).inc()
        if isinstance(action, StartTrainingJob):
            body = build_job(run, self._spec(run), action, self.settings)
            self.client.create_if_absent(self.jobs_ref(namespace), body)
        elif isinstance(action, SetCanary | Promote | Rollback):
            self._rollout(run, action)
        elif isinstance(action, EmitEvent | RecordMetrics):
            event = build_event(run, action, self.clock(), iteration=status.iteration)
            self.client.create_if_absent(Ref("v1", "events", namespace), event)

    def _rollout(self, run: dict[str, Any], action: SetCanary | Promote | Rollback) -> None:
        meta = run["metadata"]
        target = run_target(self.settings, meta.get("annotations") or {})
        rollout = Rollout(meta["namespace"], target, owner_reference(run))
        stable = None
        if isinstance(action, SetCanary):
            stable = self.client.find(rollout.stable)
        for change in kserve_changes(action, rollout, self.settings, stable):
            if isinstance(change, Merge):
                self.client.patch(change.ref, change.patch)
            elif isinstance(change, Ensure):
                self.client.ensure(change.ref, change.body)
            elif isinstance(change, Remove):
                self.client.delete(change.ref)

    @staticmethod
    def _spec(run: dict[str, Any]) -> SelfTrainingRunSpec:
        try:
            return parse_spec(run.get("spec"))
        except InvalidSpecError as exc:
            raise InvalidRunError(f"{run['metadata']['name']}: {exc}") from exc


def export_run(namespace: str, name: str, status: RunStatus) -> None:
    """A run's state as gauges: its phase (1 for the current one, 0 for the others, so a
    dashboard sees the transition), iteration and canary weight."""
    for phase in Phase:
        current = 1.0 if phase is status.phase else 0.0
        metrics.RUN_PHASE.labels(namespace, name, phase.value).set(current)
    metrics.RUN_ITERATION.labels(namespace, name).set(status.iteration)
    metrics.RUN_CANARY_WEIGHT.labels(namespace, name).set(status.canary_weight)


def forget_run(namespace: str, name: str) -> None:
    """A deleted run's series go with it (a gauge would otherwise report it forever)."""
    for phase in Phase:
        with contextlib.suppress(KeyError):
            metrics.RUN_PHASE.remove(namespace, name, phase.value)
    for gauge in (metrics.RUN_ITERATION, metrics.RUN_CANARY_WEIGHT):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)


def _kopf_errors(call: Callable[[], object]) -> None:
    """Our errors in kopf's terms: retry an API failure later, stop on a bad resource."""
    try:
        call()
    except InvalidRunError as exc:
        raise kopf.PermanentError(str(exc)) from exc
    except ApiError as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay_s) from exc


def build_registry(
    settings: OperatorSettings, controller: Callable[[], RunController]
) -> kopf.OperatorRegistry:
    """The handlers, in a registry of their own (no module-level global); ``controller``
    gives the RunController (built lazily, after kopf has started)."""
    registry = kopf.OperatorRegistry()
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING  # our own Events say what happened
        settings.persistence.finalizer = f"{GROUP}/delete-jobs"

    @kopf.on.create(*resource, registry=registry)
    def on_create(name: str, namespace: str | None, **_: Any) -> None:
        _kopf_errors(lambda: controller().reconcile_run(namespace or "", name))

    @kopf.on.resume(*resource, registry=registry)
    def on_resume(name: str, namespace: str | None, **_: Any) -> None:
        _kopf_errors(lambda: controller().reconcile_run(namespace or "", name, restore=True))

    @kopf.on.update(*resource, field="spec", registry=registry)
    def on_update(name: str, namespace: str | None, **_: Any) -> None:
        _kopf_errors(lambda: controller().reconcile_run(namespace or "", name))

    @kopf.timer(*resource, interval=settings.tick_s, registry=registry)
    def tick(name: str, namespace: str | None, **_: Any) -> None:
        _kopf_errors(lambda: controller().reconcile_run(namespace or "", name))

    @kopf.on.delete(*resource, registry=registry)
    def on_delete(name: str, namespace: str | None, **_: Any) -> None:
        _kopf_errors(lambda: controller().delete_jobs(namespace or "", name))

    return registry
