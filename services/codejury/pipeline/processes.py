"""One CodeJury service as a child process: ``codejury serve ...`` with the settings in its
environment, its output in a log file, ready when it prints ``READY port=N``.

Each service runs in its own process (as each runs in its own Deployment in a cluster),
so one can be killed and restarted while the others carry on; in its own session, so
the terminal's Ctrl-C reaches only ``codejury up``, which stops them in order.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from codejury.core.logging import get_logger
from codejury.core.processes import PARENT_PID_ENV, stop_process
from codejury.pipeline.errors import ServiceStartError

log = get_logger(__name__)

_READY = re.compile(rb"^READY port=(\d+)$", re.MULTILINE)
_LOG_TAIL_BYTES = 3000


class ServiceProcess:
    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        log_dir: Path,
        ready_timeout_s: float,
        stop_timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self.args = tuple(args)
        self._env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process ended (negative: the signal that ended it)."""
        return None if self._process is None else self._process.poll()

    def launch(self) -> ServiceProcess:
        """Start the process; ``wait_ready`` waits for it (start several, then wait)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            log_file.write(
                f"--- {time.strftime('%H:%M:%S')} codejury {' '.join(self.args)}\n".encode()
            )
            log_file.flush()
            self._log_offset = log_file.tell()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "codejury", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    **self._env,
                    "PYTHONUNBUFFERED": "1",
                    PARENT_PID_ENV: str(os.getpid()),  # a killed parent takes it along
                },
                start_new_session=True,
            )
        log.info("service.launched", service=self.name, pid=self._process.pid)
        return self

    def wait_ready(self) -> int:
        """The port the service reports, or ServiceStartError naming its log."""
        if self._process is None:
            raise ServiceStartError(f"{self.name}: launch() it before waiting for it")
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline:
            found = _READY.search(self._output())
            if found:
                self.port = int(found.group(1))
                return self.port
            if self._process.poll() is not None:
                raise ServiceStartError(
                    f"{self.name} exited with code {self._process.returncode} before it was "
                    f"ready; its log ({self.log_path}) ends with:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        self.stop()
        raise ServiceStartError(
            f"{self.name} was not ready within {self._ready_timeout_s:g}s "
            f"(pipeline.startup_timeout_s); its log ({self.log_path}) ends with:\n{self.log_tail()}"
        )

    def start(self) -> int:
        return self.launch().wait_ready()

    def _output(self) -> bytes:
        with self.log_path.open("rb") as f:
            f.seek(self._log_offset)
            return f.read()

    def log_tail(self) -> str:
        return self._output()[-_LOG_TAIL_BYTES:].decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL, no grace: what a crash looks like to the rest of the pipeline."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=self._stop_timeout_s)
        log.info("service.killed", service=self.name)

    def request_stop(self) -> None:
        """SIGTERM without waiting (stop several at once, then ``stop`` each)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def stop(self) -> None:
        """SIGTERM: the service finishes in-flight work and commits; SIGKILL after a timeout
        (SIGUSR1 first: the service writes every thread's stack to its log, to show where
        it hung)."""
        process, self._process = self._process, None
        if not stop_process(process, timeout_s=self._stop_timeout_s, dump_stacks=True):
            log.warning(
                "service.stop_timed_out",
                service=self.name,
                timeout_s=self._stop_timeout_s,
                stacks_in=str(self.log_path),
            )
        if process is not None:
            log.info("service.stopped", service=self.name, code=process.returncode)
