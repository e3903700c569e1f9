"""A KServe model server (``codejury serve reranking-model``) as a child process.

The embedded mode and the tests start one per served version, on loopback, with ports
chosen by the child (0) and reported through a ready file it writes once both its
servers listen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from codejury.core.logging import get_logger
from codejury.core.processes import PARENT_PID_ENV, stop_process
from codejury.core.settings import Settings, settings_env
from codejury.reranking.errors import ModelServerError
from codejury.reranking.model_server import host_port

log = get_logger(__name__)

_STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class ServedModel:
    """Where a started model server listens and which version it serves."""

    version: str
    host: str
    http_port: int
    grpc_port: int

    @property
    def grpc_address(self) -> str:
        return host_port(self.host, self.grpc_port)

    @property
    def http_url(self) -> str:
        return f"http://{host_port(self.host, self.http_port)}"


class ModelServerProcess:
    """``codejury serve reranking-model --version V`` as a child with the same settings."""

    def __init__(self, settings: Settings, version: str, *, registry_uri: str) -> None:
        self._settings = settings
        self._version = version
        self._registry_uri = registry_uri
        self._process: subprocess.Popen[bytes] | None = None
        self.name = f"reranking-model-{uuid.uuid4().hex[:8]}"
        self.served: ServedModel | None = None

    @property
    def log_path(self) -> Path:
        return self._settings.run_dir.resolve() / "logs" / f"{self.name}.log"

    @property
    def _ready_path(self) -> Path:
        return self._settings.run_dir.resolve() / "reranking" / f"{self.name}.ready.json"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> ServedModel:
        """Start the child and wait until it listens (ModelServerError if it cannot)."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the child without waiting (to start several at once; then ``wait_ready``)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._ready_path.parent.mkdir(parents=True, exist_ok=True)
        self._ready_path.unlink(missing_ok=True)
        env = {
            **os.environ,
            **settings_env(self._settings),
            "HF_HUB_OFFLINE": "1",
            PARENT_PID_ENV: str(os.getpid()),  # a killed service takes its servers along
        }
        argv = [
            sys.executable,
            "-m",
            "codejury",
            "serve",
            "reranking-model",
            "--version",
            self._version,
            "--registry",
            self._registry_uri,
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--ready-file",
            str(self._ready_path),
        ]
        with self.log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                argv,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        """The child's exit status once it has exited; None while it runs (or unstarted)."""
        return None if self._process is None else self._process.poll()

    def wait_ready(self) -> ServedModel:
        if self._process is None:
            raise ModelServerError("wait_ready() before launch(): launch the model server first")
        try:
            self.served = self._wait_ready(self._process)
        except BaseException:
            self.stop()
            raise
        log.info(
            "model_server.started",
            version=self.served.version,
            grpc=self.served.grpc_address,
            http=self.served.http_url,
            pid=self._process.pid,
        )
        return self.served

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> ServedModel:
        timeout_s = self._settings.reranking.model_startup_timeout_s
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise ModelServerError(
                    f"the model server for version {self._version!r} exited with code "
                    f"{process.returncode} while starting: {' / '.join(tail) or 'no output'} "
                    f"(log: {self.log_path})"
                )
            if self._ready_path.exists():
                ready = json.loads(self._ready_path.read_text())
                return ServedModel(
                    version=str(ready["version"]),
                    host=str(ready["host"]),
                    http_port=int(ready["http_port"]),
                    grpc_port=int(ready["grpc_port"]),
                )
            time.sleep(0.05)
        raise ModelServerError(
            f"the model server for version {self._version!r} was not ready within "
            f"{timeout_s:g}s (reranking.model_startup_timeout_s); its log: {self.log_path}"
        )

    def request_stop(self) -> None:
        """SIGTERM, without waiting: KServe drains in-flight requests and exits."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL after a timeout."""
        process, self._process = self._process, None
        self._ready_path.unlink(missing_ok=True)
        if process is None or process.poll() is not None:
            return
        stop_process(process, timeout_s=_STOP_TIMEOUT_S)
        log.info("model_server.stopped", version=self._version, name=self.name)

    def __enter__(self) -> ServedModel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def write_ready_file(
    path: Path, *, version: str, host: str, http_port: int, grpc_port: int
) -> None:
    """What the child writes once it listens (atomically: the parent polls for it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {"version": version, "host": host, "http_port": http_port, "grpc_port": grpc_port}
        )
    )
    os.replace(tmp, path)


def stop_all(processes: Iterable[ModelServerProcess]) -> None:
    """Stop several model servers at once (each takes seconds to exit)."""
    processes = list(processes)
    for process in processes:
        process.request_stop()
    for process in processes:
        process.stop()
