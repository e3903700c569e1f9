"""Building the reward-model ranker for a deployment mode, from the settings.

- cluster (``reranking.endpoint`` set): one route to the KServe InferenceService, which
  splits stable/canary itself;
- embedded, ``backend=kserve``: a loopback model server process per marked version
  (stable, and canary when marked), split here by ``canary_weight``;
- embedded, ``backend=in-process``: the marked versions loaded into this process; other
  versions load on demand when a request pins them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from threading import Event, Thread

from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.core.tls import tls_channel_credentials
from codejury.core.tracing import NO_TRACING, Tracing
from codejury.reranking.clients import GrpcV2Scorer
from codejury.reranking.errors import UnknownVersionError
from codejury.reranking.launcher import ModelServerProcess, stop_all
from codejury.reranking.model import RewardModel, ScoringConfig
from codejury.reranking.registry import ModelRegistry, registry_uri
from codejury.reranking.routing import CANARY, SERVICE, STABLE, Route, VersionRouter
from codejury.reranking.scoring import InProcessScorer

log = get_logger(__name__)


def scoring_config(settings: Settings) -> ScoringConfig:
    rr = settings.reranking
    return ScoringConfig(
        batch_size=rr.batch_size,
        max_length=rr.max_length,
        runtime=rr.runtime,
        quantize=rr.quantize,
        threads=rr.torch_threads,
        export_dir=Path(rr.export_dir).expanduser() if rr.export_dir else None,
    )


def load_version(settings: Settings, registry: ModelRegistry, version: str) -> RewardModel:
    """Load ``version`` (checked, then read): Unknown/Corrupt version errors."""
    return RewardModel.load(
        registry.model_dir(version), version=version, config=scoring_config(settings)
    )


def grpc_scorer(
    settings: Settings, address: str, *, tls: bool, tracing: Tracing = NO_TRACING
) -> GrpcV2Scorer:
    """A client of the KServe gRPC endpoint at ``address``; ``tls``: it serves TLS."""
    return GrpcV2Scorer(
        address,
        model_name=settings.reranking.model_name,
        timeout_s=settings.reranking.request_timeout_s,
        tracing=tracing,
        credentials=tls_channel_credentials(settings.tls) if tls else None,
    )


@contextmanager
def reward_router(
    settings: Settings,
    registry: ModelRegistry | None = None,
    *,
    on_lost: Callable[[str], None] | None = None,
    tracing: Tracing = NO_TRACING,
) -> Iterator[VersionRouter]:
    """The router for the configured mode; model servers it started stop on exit.
    ``tracing``: a client span per KServe call, its context in the call's metadata.

    ``on_lost`` is called (once, from a watcher thread) when a model server it started
    exits on its own: every ranking would fail from then on, so the caller should stop
    and let its supervisor start it again."""
    rr = settings.reranking
    registry = registry or ModelRegistry.from_uri(registry_uri(settings))
    with ExitStack() as stack:
        if rr.endpoint:
            router = VersionRouter(
                Route(
                    SERVICE,
                    grpc_scorer(settings, rr.endpoint, tls=rr.endpoint_tls, tracing=tracing),
                )
            )
            stack.callback(router.close)
            log.info("reranking.cluster_mode", endpoint=rr.endpoint)
            yield router
            return
        channels = registry.channels()
        if channels.stable is None:
            raise UnknownVersionError(
                f"no version is marked stable in {registry.root}: register one and mark it "
                "(`codejury reranker init` then `codejury reranker mark stable VERSION`)"
            )
        marked = [(STABLE, channels.stable)] + (
            [(CANARY, channels.canary)] if channels.canary else []
        )
        routes: dict[str, Route] = {}
        if rr.backend == "in-process":
            for channel, version in marked:
                model = load_version(settings, registry, version)
                routes[channel] = Route(channel, InProcessScorer(model), version)
        else:
            for _, version in marked:  # fail here, clearly, before starting any process
                registry.model_dir(version)
            processes = {
                channel: ModelServerProcess(settings, version, registry_uri=str(registry.root))
                for channel, version in marked
            }
            stack.callback(stop_all, processes.values())
            for process in processes.values():
                process.launch()  # the servers start side by side
            if on_lost is not None:
                stack.callback(_watch(processes, on_lost).set)  # runs before stop_all
            for channel, version in marked:
                served = processes[channel].wait_ready()
                # a model server started here serves TLS when this process has a certificate
                scorer = grpc_scorer(
                    settings,
                    served.grpc_address,
                    tls=settings.tls.cert_file is not None,
                    tracing=tracing,
                )
                stack.callback(scorer.close)
                routes[channel] = Route(channel, scorer, version)
        router = VersionRouter(
            routes[STABLE],
            canary=routes.get(CANARY),
            canary_weight=rr.canary_weight,
            registry=registry,
            load_version=(
                (lambda v: InProcessScorer(load_version(settings, registry, v)))
                if rr.backend == "in-process"
                else None
            ),
        )
        log.info(
            "reranking.embedded_mode",
            backend=rr.backend,
            stable=channels.stable,
            canary=channels.canary,
            canary_weight=rr.canary_weight if channels.canary else 0.0,
        )
        yield router


def _watch(processes: dict[str, ModelServerProcess], on_lost: Callable[[str], None]) -> Event:
    """A thread that calls ``on_lost`` if a server exits; set the returned event to end it."""
    closing = Event()

    def watch() -> None:
        while not closing.wait(1.0):
            for channel, process in processes.items():
                code = process.exit_code()
                if code is not None and not closing.is_set():
                    on_lost(
                        f"the {channel} model server exited with status {code} (its log: "
                        f"{process.log_path})"
                    )
                    return

    Thread(target=watch, name="model-server-watch", daemon=True).start()
    return closing
