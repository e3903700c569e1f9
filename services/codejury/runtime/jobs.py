"""Training jobs on one machine: ``codejury train iteration`` as a child process, the same
entry point the Kubernetes Job runs.

A job is known by its (iteration, attempt). Starting one that runs already does nothing,
and neither does starting one whose iteration has registered its version (the iteration
driver records that in ``<run_dir>/training/iterations/<I>/register/``), so the runtime
may apply a ``StartTrainingJob`` twice (after a restart) without training twice. A
restarted runtime that finds no process for the current attempt starts it again; the
iteration resumes at the step it was in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from codejury.control.actions import StartTrainingJob
from codejury.control.observations import JobState, TrainingJob
from codejury.control.spec import SelfTrainingRunSpec
from codejury.control.training_job import spec_languages, training_command
from codejury.core.logging import get_logger
from codejury.core.processes import stop_process
from codejury.core.settings import Settings, settings_env
from codejury.reranking.registry import ModelRegistry
from codejury.training.workdir import is_complete, iteration_dir, read_result

log = get_logger(__name__)

__all__ = ["LocalTrainingJobs", "spec_languages", "training_command", "training_env"]

_STOP_TIMEOUT_S = 30.0


def training_env(settings: Settings, spec: SelfTrainingRunSpec) -> dict[str, str]:
    """Settings for the job: the deployment's, with the spec's generator and PPO sizes."""
    ppo = spec.ppo
    return {
        **settings_env(settings),
        "CODEJURY_GENERATION__MODEL": spec.generator,
        "CODEJURY_TRAINING__LANGUAGES": spec_languages(spec, settings.training.languages),
        "CODEJURY_TRAINING__PPO_BATCH_SIZE": str(ppo.batch_size),
        "CODEJURY_TRAINING__PPO_MINI_BATCH_SIZE": str(ppo.mini_batch_size),
        "CODEJURY_TRAINING__PPO_LEARNING_RATE": str(ppo.learning_rate),
        "CODEJURY_TRAINING__PPO_MAX_NEW_TOKENS": str(ppo.max_new_tokens),
        "CODEJURY_TRAINING__PPO_INIT_KL_COEF": str(ppo.kl_coef),
    }


class LocalTrainingJobs:
    def __init__(
        self,
        settings: Settings,
        spec: SelfTrainingRunSpec,
        registry: ModelRegistry,
        log_dir: Path,
    ) -> None:
        self._settings = settings
        self._spec = spec
        self._registry = registry
        self._log_dir = log_dir
        self._processes: dict[tuple[int, int], subprocess.Popen[bytes]] = {}

    def log_path(self, iteration: int, attempt: int) -> Path:
        return self._log_dir / f"train-i{iteration}-a{attempt}.log"

    def start(self, action: StartTrainingJob) -> None:
        key = (action.iteration, action.attempt)
        running = self._processes.get(key)
        if (running is not None and running.poll() is None) or self._registered(action.iteration):
            return
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path(*key).open("ab") as sink:
            self._processes[key] = subprocess.Popen(
                [sys.executable, "-m", "codejury", *training_command(action, self._spec)],
                env={**os.environ, **training_env(self._settings, self._spec)},
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        log.info("run.training_started", iteration=action.iteration, attempt=action.attempt)

    def observe(self, iteration: int, attempt: int) -> TrainingJob | None:
        """The job's state, or None when no job of this attempt exists (never started, or
        started by a runtime that has since stopped)."""
        version = self._registered(iteration)
        if version is not None:
            metrics = self._registry.get(version).metrics
            return TrainingJob(iteration, attempt, JobState.SUCCEEDED, version, dict(metrics))
        process = self._processes.get((iteration, attempt))
        if process is None:
            return None
        code = process.poll()
        if code is None:
            return TrainingJob(iteration, attempt, JobState.RUNNING)
        reason = f"exit code {code}: {self._last_line(iteration, attempt)}"
        return TrainingJob(iteration, attempt, JobState.FAILED, reason=reason)

    def stop(self) -> None:
        """SIGTERM the running jobs (their iteration resumes when started again)."""
        for process in self._processes.values():
            if process.poll() is None:
                stop_process(process, timeout_s=_STOP_TIMEOUT_S)
        self._processes.clear()

    def _registered(self, iteration: int) -> str | None:
        register = iteration_dir(self._settings.run_dir, iteration) / "register"
        if not is_complete(register):
            return None
        version: str = read_result(register)["version_id"]
        return version

    def _last_line(self, iteration: int, attempt: int) -> str:
        path = self.log_path(iteration, attempt)
        try:
            lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return f"no log at {path}"
        return f"{lines[-1].strip()[:300]} (log: {path})" if lines else f"empty log {path}"
