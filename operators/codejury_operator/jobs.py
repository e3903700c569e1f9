"""The training Job of one (iteration, attempt), and what its Job and pod say back.

``build_job`` makes the ``batch/v1`` Job that runs ``codejury train iteration`` (the same
entry point the local runtime starts as a child process). It is named for its run,
iteration and attempt (``<run>-i<I>-a<A>``), so creating it twice is a conflict and not a
second job; ``backoffLimit`` is 0 because retries are ``reconcile``'s (a new attempt is a
new Job), and ``activeDeadlineSeconds`` bounds a stuck one.

How the Job reports the version it registered: after ``codejury train iteration``
succeeds, the container writes ``{"version": ..., "metrics": {...}}`` (from the
iteration's ``register/result.json`` and the version's manifest) to its termination
message, ``/dev/termination-log``; ``terminationMessagePolicy: FallbackToLogsOnError``
makes a failed container's message the tail of its log. ``observe_job`` reads both from
the Job's pod, so the training pod needs no API access at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from codejury.control.actions import StartTrainingJob
from codejury.control.observations import JobState, TrainingJob
from codejury.control.spec import SelfTrainingRunSpec
from codejury.control.training_job import training_command

from codejury_operator.settings import API_VERSION, KIND, OperatorSettings

CONTAINER = "train"
RUN_LABEL = "codejury.io/run"
ITERATION_LABEL = "codejury.io/iteration"
ATTEMPT_LABEL = "codejury.io/attempt"
COMPONENT_LABEL = "app.kubernetes.io/component"
_NAME_LIMIT = 63  # a Job's name becomes its pods' job-name label: at most 63 characters

#: Run after a successful ``codejury train iteration``: the registered version and its
#: metrics, as JSON, into the termination message (kept under its 4096-byte limit).
REPORT_SCRIPT = """\
import json, os, pathlib
run_dir = pathlib.Path(os.environ["CODEJURY_RUN_DIR"])
iteration = os.environ["TRAINING_REPORT_ITERATION"]
registry = os.environ.get("CODEJURY_RERANKING__REGISTRY_URI", "").removeprefix("file://")
registry = pathlib.Path(registry) if registry else run_dir / "reranking" / "registry"
result = run_dir / "training" / "iterations" / iteration / "register" / "result.json"
version = json.loads(result.read_text())["version_id"]
manifest = json.loads((registry / "versions" / version / "manifest.json").read_text())
metrics = {k: v for k, v in manifest.get("metrics", {}).items() if isinstance(v, (int, float))}
report = json.dumps({"version": version, "metrics": metrics})
if len(report) > 4000:
    report = json.dumps({"version": version, "metrics": {}})
pathlib.Path("/dev/termination-log").write_text(report)
"""

# The report script and its iteration travel in variables outside the CODEJURY_ settings
# prefix (the settings refuse names they do not know); the script is an argument of sh.
_SHELL = 'codejury "$@" && exec python3 -c "$TRAINING_REPORT_PY"'


def job_name(run: str, iteration: int, attempt: int) -> str:
    """``<run>-i<I>-a<A>``, the run's name shortened (with a hash) to fit 63 characters."""
    suffix = f"-i{iteration}-a{attempt}"
    return _fit(run, _NAME_LIMIT - len(suffix)) + suffix


def label_value(value: str) -> str:
    """A label value (at most 63 characters) that still tells runs apart."""
    return _fit(value, _NAME_LIMIT)


def run_selector(run: str) -> dict[str, str]:
    return {RUN_LABEL: label_value(run)}


def training_args(action: StartTrainingJob, spec: SelfTrainingRunSpec) -> list[str]:
    """``codejury`` arguments of the job: the local runtime's, from one builder."""
    return training_command(action, spec)


def training_env(
    action: StartTrainingJob, spec: SelfTrainingRunSpec, settings: OperatorSettings
) -> dict[str, str]:
    """The job's settings (``CODEJURY_*``) from the spec, as ``control.jobs.training_env``
    sets them; what the spec does not say comes from the image's defaults."""
    ppo = spec.ppo
    env = {
        "CODEJURY_RUN_DIR": settings.run_dir_mount,
        "CODEJURY_LOG_FORMAT": "json",
        "CODEJURY_GENERATION__MODEL": spec.generator,
        "CODEJURY_TRAINING__PPO_BATCH_SIZE": str(ppo.batch_size),
        "CODEJURY_TRAINING__PPO_MINI_BATCH_SIZE": str(ppo.mini_batch_size),
        "CODEJURY_TRAINING__PPO_LEARNING_RATE": str(ppo.learning_rate),
        "CODEJURY_TRAINING__PPO_MAX_NEW_TOKENS": str(ppo.max_new_tokens),
        "CODEJURY_TRAINING__PPO_INIT_KL_COEF": str(ppo.kl_coef),
        "TRAINING_REPORT_ITERATION": str(action.iteration),
        "TRAINING_REPORT_PY": REPORT_SCRIPT,
    }
    languages = [d.split("/", 1)[1] for d in spec.datasets if "/" in d]
    if languages:
        env["CODEJURY_TRAINING__LANGUAGES"] = ",".join(languages)
    if settings.registry_uri:
        env["CODEJURY_RERANKING__REGISTRY_URI"] = settings.registry_uri
    return env


def owner_reference(run: Mapping[str, Any]) -> dict[str, Any]:
    """Makes the garbage collector delete an object with its run."""
    meta = run["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build_job(
    run: Mapping[str, Any],
    spec: SelfTrainingRunSpec,
    action: StartTrainingJob,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The ``batch/v1`` Job of ``action`` for the SelfTrainingRun object ``run``."""
    meta = run["metadata"]
    name = job_name(meta["name"], action.iteration, action.attempt)
    labels = {
        "app.kubernetes.io/name": "codejury",
        COMPONENT_LABEL: "training",
        "app.kubernetes.io/managed-by": "codejury-operator",
        **run_selector(meta["name"]),
        ITERATION_LABEL: str(action.iteration),
        ATTEMPT_LABEL: str(action.attempt),
    }
    requests = dict(spec.resources.requests)
    # the memory limit defaults to the request (spec.Resources says why)
    limits = {"memory": requests["memory"]} if "memory" in requests else {}
    limits.update(spec.resources.limits)
    env = training_env(action, spec, settings)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "command": ["/bin/sh", "-c", _SHELL, "sh"],
        "args": training_args(action, spec),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": [{"name": "run-dir", "mountPath": settings.run_dir_mount}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    # The deployment's settings (Celery broker, Kafka, credentials) come by reference; the
    # explicit env above, from the run's spec, wins over them.
    env_from = []
    if settings.settings_configmap:
        env_from.append({"configMapRef": {"name": settings.settings_configmap}})
    if settings.settings_secret:
        env_from.append({"secretRef": {"name": settings.settings_secret}})
    if env_from:
        container["envFrom"] = env_from
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {
                "name": "run-dir",
                "persistentVolumeClaim": {"claimName": settings.run_dir_claim},
            }
        ],
    }
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        # core v1.Tolerations already: the spec's mapping form, empty fields left out
        pod["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
            | {"operator": t.operator}
            for t in spec.tolerations
        ]
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {
                "codejury.io/parent-version": action.parent_version or "stable",
            },
            "ownerReferences": [owner_reference(run)],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.job_deadline_s,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def observe_job(
    iteration: int,
    attempt: int,
    job: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
) -> TrainingJob | None:
    """What ``reconcile`` needs to know of the Job (None: there is none) and its pods."""
    if job is None:
        return None
    status = job.get("status") or {}
    conditions = {
        c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"
    }
    message = _termination_message(pods)
    if "Complete" in conditions or (status.get("succeeded") or 0) > 0:
        report = _report(message)
        if report is None:
            reason = (
                "the job succeeded but its termination message is not the version report "
                f"(expected JSON with 'version'): {message[-300:]!r}"
            )
            return TrainingJob(iteration, attempt, JobState.FAILED, reason=reason)
        version, metrics = report
        return TrainingJob(iteration, attempt, JobState.SUCCEEDED, version, metrics)
    failed = conditions.get("Failed")
    if failed is not None or (status.get("failed") or 0) > 0:
        why = ": ".join(
            x for x in ((failed or {}).get("reason"), (failed or {}).get("message")) if x
        )
        last = _last_line(message)
        reason = "; ".join(x for x in (why or "the job failed", last) if x)
        return TrainingJob(iteration, attempt, JobState.FAILED, reason=reason[:1000])
    return TrainingJob(iteration, attempt, JobState.RUNNING)


def _report(message: str) -> tuple[str, dict[str, float]] | None:
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    version = data.get("version")
    metrics = data.get("metrics") or {}
    if not isinstance(version, str) or not version or not isinstance(metrics, dict):
        return None
    return version, {
        str(k): float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _termination_message(pods: Sequence[Mapping[str, Any]]) -> str:
    """The training container's termination message of the newest pod that has one."""
    for pod in sorted(
        pods, key=lambda p: str(p.get("metadata", {}).get("creationTimestamp", "")), reverse=True
    ):
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != CONTAINER:
                continue
            terminated = (cs.get("state") or {}).get("terminated") or {}
            message = terminated.get("message")
            if message:
                return str(message).strip()
            code = terminated.get("exitCode")
            if code is not None:
                return f"exit code {code} ({terminated.get('reason', 'no reason')})"
    return ""


def _last_line(message: str) -> str:
    lines = [x.strip() for x in message.splitlines() if x.strip()]
    return lines[-1][:300] if lines else ""


def _fit(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: limit - 9].rstrip('-.')}-{digest}"
