"""``codejury up``: the whole pipeline on one machine, one process per service.

    tansu (Kafka)  <- every stage's consumer and producer, the front door's tail
    Celery worker  <- the execution service fans sandbox runs out to it
    generation     serve generation --kafka-stage: solve.requested -> candidates.generated
    execution      serve execution --kafka-stage: candidates.generated -> candidates.executed
    reranking      serve reranking --kafka-stage: candidates.executed -> solve.completed,
                   feedback (it starts the KServe servers of the stable and canary versions)
    Solve          the front door, in this process

The services start together (the generator's model load is the long pole) and stop in
the reverse order of the data flow's needs: the front door first (no new requests), then
the stages, each finishing its in-flight event and committing, then the worker and tansu.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from codejury.bus.embedded import EmbeddedBroker
from codejury.core.logging import get_logger
from codejury.core.settings import Settings, settings_env, with_group
from codejury.execution.celery_app import make_celery_app
from codejury.execution.local_worker import LocalWorker
from codejury.pipeline.front_door import SolveFrontDoor
from codejury.pipeline.processes import ServiceProcess
from codejury.reranking.bootstrap import ensure_stable
from codejury.reranking.registry import ModelRegistry, registry_uri

log = get_logger(__name__)

SERVICES = ("generation", "execution", "reranking")


def metrics_port_for(settings: Settings, offset: int) -> Settings:
    """The settings of the child process ``offset`` (1, 2, ...): one machine, so each
    serves its metrics on the port after the last (``up`` itself on ``metrics.port``).
    Port 0 (any free port) and no port stay as they are."""
    port = settings.metrics.port
    if not port:
        return settings
    return with_group(settings, "metrics", port=port + offset)


@dataclass(frozen=True)
class Endpoint:
    name: str
    address: str
    what: str


def embedded_settings(settings: Settings, bootstrap_servers: str) -> Settings:
    """The settings every process of the embedded deployment shares."""
    bus = settings.bus.model_copy(update={"bootstrap_servers": bootstrap_servers})
    # tansu's ListOffsets(latest) is wrong: the front door reads completions from the start.
    pipeline = settings.pipeline.model_copy(update={"completions_from": "beginning"})
    return settings.model_copy(
        update={"bus": bus, "pipeline": pipeline, "run_dir": settings.run_dir.resolve()}
    )


class EmbeddedPipeline:
    """Starts everything on ``start`` (or ``with``), stops everything on ``stop``."""

    def __init__(
        self, settings: Settings, *, progress: Callable[[str], None] | None = None
    ) -> None:
        self._settings = settings
        self.progress = progress or (lambda _message: None)
        self.log_dir = settings.run_dir.resolve() / "logs"
        self.broker: EmbeddedBroker | None = None
        self.worker: LocalWorker | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.front_door: SolveFrontDoor | None = None
        self.settings = settings  # the shared settings once the broker runs
        self.reranker_version: str | None = None

    # -- start -------------------------------------------------------------------------

    def start(self) -> EmbeddedPipeline:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.progress("starting the Kafka broker (tansu)")
        self.broker = EmbeddedBroker(
            self._settings.broker, self._settings.bus, log_dir=self.log_dir
        ).start()
        self.settings = settings = embedded_settings(self._settings, self.broker.bootstrap_servers)
        self.progress("checking the reranker registry")
        models = ModelRegistry.from_uri(registry_uri(settings))
        self.reranker_version = ensure_stable(models, settings.pipeline.reranker_backbone)
        for name in SERVICES:
            self.services[name] = self._service(name).launch()
        self.progress("starting a Celery sandbox worker")
        self.worker = LocalWorker(
            metrics_port_for(settings, 1 + len(SERVICES)), make_celery_app(settings)
        ).start()
        for name in SERVICES:
            self.progress(f"waiting for the {name} service")
            self.services[name].wait_ready()
        self.progress("starting the Solve front door")
        self.front_door = SolveFrontDoor(settings).start()

    def restart(self, name: str) -> int:
        """Start service ``name`` again (after a crash or a ``kill``); returns its port."""
        self.services[name].stop()
        self.services[name] = fresh = self._service(name)
        return fresh.start()

    def set_canary_weight(self, weight: float) -> None:
        """Serve the registry's channels with ``weight`` of Rank requests on the canary: the
        reranking service reads both when it starts, so it is restarted (its in-flight
        events finish first; requests meanwhile wait on Kafka)."""
        self.settings = with_group(self.settings, "reranking", canary_weight=weight)
        self.progress(f"restarting the reranking service (canary weight {weight:.0%})")
        self.restart("reranking")

    def _service(self, name: str) -> ServiceProcess:
        """``codejury serve NAME --kafka-stage`` with the shared settings."""
        return ServiceProcess(
            name,
            ["serve", name, "--kafka-stage"],
            env=settings_env(metrics_port_for(self.settings, 1 + SERVICES.index(name))),
            log_dir=self.log_dir,
            ready_timeout_s=self.settings.pipeline.startup_timeout_s,
        )

    # -- what runs where ---------------------------------------------------------------

    @property
    def solve_address(self) -> str:
        if self.front_door is None:
            raise RuntimeError("the pipeline is not started")
        return f"{self.front_door.host}:{self.front_door.port}"

    def endpoints(self) -> list[Endpoint]:
        settings = self.settings
        rows = []
        if self.front_door is not None:
            rows.append(Endpoint("solve", self.solve_address, "Solve gRPC (codejury solve)"))
        hosts = {
            "generation": settings.generation.grpc_host,
            "execution": settings.execution.grpc_host,
            "reranking": settings.reranking.grpc_host,
        }
        for name, service in self.services.items():
            if service.port is not None:
                rows.append(
                    Endpoint(name, f"{hosts[name]}:{service.port}", f"gRPC, log {service.log_path}")
                )
        if self.broker is not None:
            rows.append(Endpoint("kafka", self.broker.bootstrap_servers, "tansu (embedded)"))
        if self.worker is not None:
            rows.append(Endpoint("celery", f"pid {self.worker.pid}", f"log {self.worker.log_path}"))
        port = settings.metrics.port
        if port:
            last = port + len(SERVICES) + 1
            rows.append(
                Endpoint(
                    "metrics",
                    f"{settings.metrics.host}:{port}-{last}",
                    "Prometheus /metrics: this process, " + ", ".join(SERVICES) + ", the worker",
                )
            )
        return rows

    # -- stop --------------------------------------------------------------------------

    def stop(self) -> None:
        if self.front_door is not None:
            self.progress("stopping the Solve front door")
            self.front_door.stop()
            self.front_door = None
        if self.services:
            self.progress("stopping the services (each finishes its in-flight event)")
        for service in self.services.values():
            service.request_stop()
        for service in self.services.values():
            service.stop()
        self.services = {}
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> EmbeddedPipeline:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
