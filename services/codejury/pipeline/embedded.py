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

While it runs, ``supervise`` (every second under ``codejury up``) starts a service or the
worker that died again, with backoff, and has the front door refuse new requests at once
meanwhile (UNAVAILABLE, naming the stage) rather than let them wait out their deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from codejury.bus.embedded import EmbeddedBroker
from codejury.core.cpus import share, usable_cpus
from codejury.core.logging import get_logger
from codejury.core.settings import Settings, settings_env, with_group
from codejury.execution.celery_app import make_celery_app
from codejury.execution.local_worker import LocalWorker, WorkerStartError
from codejury.pipeline.errors import ServiceStartError
from codejury.pipeline.front_door import DownSource, SolveFrontDoor
from codejury.pipeline.processes import ServiceProcess
from codejury.pipeline.supervision import Outage, outage_after_exit, outage_after_failed_start
from codejury.reranking.bootstrap import ensure_stable
from codejury.reranking.registry import ModelRegistry, registry_uri

log = get_logger(__name__)

SERVICES = ("generation", "execution", "reranking")
WORKER = "worker"  # the Celery sandbox worker, supervised as the services are


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
    # No stage health watch: supervise() sees a stage's process exit at once and tells the
    # front door itself, a restarted stage may listen on another port (grpc_port 0), and
    # on one busy machine a slow health answer would refuse requests the stages can take.
    pipeline = settings.pipeline.model_copy(
        update={"completions_from": "beginning", "stage_health": None}
    )
    # one host, several servers: a shared probe port would clash (and nothing probes here)
    tls = settings.tls.model_copy(update={"probe_port": None})
    return settings.model_copy(
        update={
            "bus": bus,
            "pipeline": pipeline,
            "tls": tls,
            "run_dir": settings.run_dir.resolve(),
        }
    )


def private_ports(settings: Settings) -> Settings:
    """``settings`` with every server of the deployment on a free port (metrics aside: a
    port asked for stays): a deployment that lives for one command (``demo``, ``eval``,
    ``bench method``) runs beside ``codejury up`` or another such command."""
    return settings.model_copy(
        update={
            "generation": settings.generation.model_copy(update={"grpc_port": 0}),
            "execution": settings.execution.model_copy(update={"grpc_port": 0}),
            "reranking": settings.reranking.model_copy(
                update={"grpc_port": 0, "model_http_port": 0, "model_grpc_port": 0}
            ),
            "pipeline": settings.pipeline.model_copy(update={"grpc_port": 0}),
        }
    )


#: The processes of the embedded deployment that run a model: the generator and the
#: reward model's server (a canary's server serves a share of the requests beside it).
MODEL_PROCESSES = 2


def cpu_shares(settings: Settings, cpus: int) -> Settings:
    """``settings`` with the generator's and the reward model's threads for one machine of
    ``cpus`` CPUs: each gets its share, so their thread pools together fit the cores
    (``core.cpus`` says what more threads cost). Threads the settings give are kept.

    Only the service processes get them: what the caller of the deployment does in its
    own process while the pipeline idles (the demo's training, PPO) keeps every core."""
    each = share(cpus, MODEL_PROCESSES)
    gen, rr = settings.generation, settings.reranking
    generation = gen.model_copy(
        update={
            "torch_threads": gen.torch_threads or each,
            "llamacpp_threads": gen.llamacpp_threads or each,
        }
    )
    reranking = rr.model_copy(update={"torch_threads": rr.torch_threads or each})
    return settings.model_copy(update={"generation": generation, "reranking": reranking})


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
        # supervision: what is down, since when each child runs, the attempt it came from
        self.outages: dict[str, Outage] = {}
        self._up_since: dict[str, float] = {}
        self._attempt: dict[str, int] = {}

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
        self.worker = self._new_worker().start()
        for name in SERVICES:
            self.progress(f"waiting for the {name} service")
            self.services[name].wait_ready()
            self._up_since[name] = time.monotonic()
        self._up_since[WORKER] = time.monotonic()
        self.progress("starting the Solve front door")
        self.front_door = SolveFrontDoor(settings).start()
        for name in SERVICES:  # every stage is up now (codejury_stage_up says so from here)
            self.front_door.servicer.stage_up(name, source=DownSource.SUPERVISOR)

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

    def _new_worker(self) -> LocalWorker:
        settings = self.settings
        return LocalWorker(metrics_port_for(settings, 1 + len(SERVICES)), make_celery_app(settings))

    # -- supervision (codejury up) -----------------------------------------------------

    def supervise(self) -> list[str]:
        """One look at every child process: a service or the worker that exited is
        reported, the front door refuses new requests at once (UNAVAILABLE, naming it),
        and it is started again with backoff (``pipeline.supervision``). Returns what
        happened, one line each. ``codejury up`` calls it every second."""
        said: list[str] = []
        now = time.monotonic()
        for name in (*SERVICES, WORKER):
            outage = self.outages.get(name)
            if outage is None:
                code = self._exit_code(name)
                if code is None:
                    continue
                outage = outage_after_exit(
                    f"exited with code {code}",
                    now=now,
                    up_for_s=now - self._up_since.get(name, now),
                    previous_attempt=self._attempt.get(name, 0),
                )
                self.outages[name] = outage
                if self.front_door is not None:
                    self.front_door.servicer.stage_down(
                        name, f"{outage.why}; restarting", source=DownSource.SUPERVISOR
                    )
                said.append(
                    f"{name} {outage.why}; starting it again in "
                    f"{outage.retry_at - now:g}s (attempt {outage.attempt}); its log: "
                    f"{self._log_of(name)}"
                )
                log.warning("service.died", service=name, why=outage.why, attempt=outage.attempt)
            elif now >= outage.retry_at:
                said.append(self._start_again(name, outage))
        return said

    def _start_again(self, name: str, outage: Outage) -> str:
        self.progress(f"starting {name} again (attempt {outage.attempt})")
        try:
            if name == WORKER:
                if self.worker is not None:
                    self.worker.stop()
                self.worker = self._new_worker().start()
            else:
                self.restart(name)
        except (ServiceStartError, WorkerStartError) as exc:
            self.outages[name] = later = outage_after_failed_start(outage, now=time.monotonic())
            first_line = str(exc).splitlines()[0]
            return (
                f"{name} did not start ({first_line}); next try in "
                f"{later.retry_at - time.monotonic():.0f}s"
            )
        del self.outages[name]
        self._attempt[name] = outage.attempt
        self._up_since[name] = time.monotonic()
        if self.front_door is not None:
            self.front_door.servicer.stage_up(name, source=DownSource.SUPERVISOR)
        log.info("service.restarted", service=name, attempt=outage.attempt)
        return f"{name} is running again (attempt {outage.attempt})"

    def _exit_code(self, name: str) -> int | None:
        if name == WORKER:
            return None if self.worker is None else self.worker.returncode
        service = self.services.get(name)
        return None if service is None else service.returncode

    def _log_of(self, name: str) -> Path | None:
        if name == WORKER:
            return None if self.worker is None else self.worker.log_path
        return self.services[name].log_path

    def service_env(self, name: str) -> dict[str, str]:
        """The settings service ``name`` starts with: the shared ones, its metrics port,
        and its share of the CPUs."""
        settings = cpu_shares(self.settings, usable_cpus())
        return settings_env(metrics_port_for(settings, 1 + SERVICES.index(name)))

    def _service(self, name: str) -> ServiceProcess:
        """``codejury serve NAME --kafka-stage`` with the shared settings."""
        return ServiceProcess(
            name,
            ["serve", name, "--kafka-stage"],
            env=self.service_env(name),
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
