"""A Celery worker as a child process, for the embedded mode and tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu.utils.url import maybe_sanitize_url

from codejury.core.errors import PermanentError
from codejury.core.logging import get_logger
from codejury.core.processes import PARENT_PID_ENV, stop_process
from codejury.core.settings import Settings, settings_env
from codejury.execution.celery_app import HEALTH_TASK

log = get_logger(__name__)

_STOP_TIMEOUT_S = 20.0


def _shown(url: object) -> str:
    """A broker or backend URL as it may be printed: its password masked."""
    return str(maybe_sanitize_url(str(url)))


class WorkerStartError(PermanentError):
    """The worker process exited or did not answer a health task in time."""


class LocalWorker:
    """Runs ``codejury worker`` as a child process with the same settings."""

    def __init__(self, settings: Settings, app: Celery, *, startup_timeout_s: float = 60.0) -> None:
        self._settings = settings
        self._app = app
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.name = f"codejury-{uuid.uuid4().hex[:8]}"

    @property
    def log_path(self) -> Path:
        return self._settings.run_dir.resolve() / "logs" / f"worker-{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        """None while the worker runs; its exit code once it ended."""
        return None if self._process is None else self._process.poll()

    def start(self) -> LocalWorker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # PARENT_PID_ENV: a caller killed by SIGKILL takes its worker along (no orphan).
        env = {**os.environ, **settings_env(self._settings), PARENT_PID_ENV: str(os.getpid())}
        with self.log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "codejury", "worker", "--name", self.name],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_healthy(self._process)
        except BaseException:
            self.stop()
            raise
        log.info("worker.started", name=self.name, pid=self._process.pid)
        return self

    def _wait_healthy(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        try:
            result = self._app.send_task(HEALTH_TASK, args=["startup"])
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise WorkerStartError(
                        f"Celery worker exited with code {process.returncode} while starting; "
                        f"its log: {self.log_path}"
                    )
                try:
                    result.get(timeout=0.5, interval=0.05)
                    return
                except CeleryTimeoutError:
                    continue
        except WorkerStartError:
            raise
        except Exception as exc:  # kombu / redis / backend errors, converted once here
            raise WorkerStartError(
                f"cannot reach the Celery broker {_shown(self._app.conf.broker_url)} or result "
                f"backend {_shown(self._app.conf.result_backend)} "
                f"({type(exc).__name__}: {str(exc).strip()}): "
                "start it or fix CODEJURY_CELERY__BROKER_URL / CODEJURY_CELERY__RESULT_BACKEND"
            ) from exc
        raise WorkerStartError(
            f"Celery worker did not answer a health task within {self._startup_timeout_s:g}s "
            f"(broker {_shown(self._app.conf.broker_url)}); its log: {self.log_path}"
        )

    def stop(self) -> None:
        """Warm shutdown: the worker finishes its running tasks, then exits."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        stop_process(process, timeout_s=_STOP_TIMEOUT_S)
        log.info("worker.stopped", name=self.name)

    def __enter__(self) -> LocalWorker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
