"""The training job's command line (pure): what the local runtime runs as a child process
and what the operator's Kubernetes Job runs, built in one place so the two cannot drift.
Kept apart from ``jobs`` (which reads the iteration's files through ``training``) so the
operator can import it without the training package."""

from __future__ import annotations

from codejury.control.actions import StartTrainingJob
from codejury.control.spec import SelfTrainingRunSpec


def spec_languages(spec: SelfTrainingRunSpec, default: str) -> str:
    """The MBXP languages of ``spec.datasets`` ('mbxp/python', 'mbxp/cpp'); a bare 'mbxp'
    means ``default`` (training.languages)."""
    languages = [d.split("/", 1)[1] for d in spec.datasets if "/" in d]
    return ",".join(languages) if languages else default


def training_command(action: StartTrainingJob, spec: SelfTrainingRunSpec) -> list[str]:
    """The arguments of ``codejury`` for this job (also what the Kubernetes Job runs)."""
    return [
        "train",
        "iteration",
        "--iteration",
        str(action.iteration),
        "--base-version",
        action.parent_version or "stable",
        "--samples-per-problem",
        str(spec.samples_per_problem),
        "--ppo-steps",
        str(spec.ppo.steps),
        # The deployment's Celery workers run the samples (locally and in a cluster): a job's
        # own worker would share their queue and take (then drop) the deployment's tasks.
        "--executor",
        "celery",
    ]
