"""Infrastructure commands: settings, the embedded broker, Celery workers, stubs."""

from __future__ import annotations

import os
import signal
import threading
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table

from codejury.cli.app import app, console, err_console, settings_of, start_metrics
from codejury.core.errors import CodeJuryError
from codejury.core.settings import ENV_PREFIX, NESTED_DELIMITER
from codejury.core.signals import set_on_signals


def _rows(prefix: str, model: BaseModel) -> list[tuple[str, str, str]]:
    rows = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        env = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            rows.extend(_rows(env + NESTED_DELIMITER, value))
        else:
            rows.append((env, "" if value is None else str(value), field.description or ""))
    return rows


@app.command("settings")
def settings_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every setting, its environment variable and its effective value."""
    settings = settings_of(ctx)
    if as_json:
        console.print_json(settings.model_dump_json())
        return
    table = Table("environment variable", "value", "meaning")
    for row in _rows(ENV_PREFIX, settings):
        table.add_row(*row)
    console.print(table)


@app.command()
def broker(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
) -> None:
    """Run the embedded Kafka broker (tansu, memory storage) until Ctrl-C."""
    from codejury.bus.embedded import EmbeddedBroker

    settings = settings_of(ctx)
    broker_settings = settings.broker.model_copy(update={"port": port or settings.broker.port})
    stop = threading.Event()
    set_on_signals(stop, (signal.SIGTERM,))
    with EmbeddedBroker(
        broker_settings, settings.bus, log_dir=settings.run_dir.resolve() / "logs"
    ) as running:
        console.print(f"Kafka broker (tansu) listening on [bold]{running.bootstrap_servers}[/]")
        console.print(f"export CODEJURY_BUS__BOOTSTRAP_SERVERS={running.bootstrap_servers}")
        console.print("Ctrl-C stops it (memory storage: its events are gone then).")
        try:
            while not stop.wait(0.5):
                if not running.running:
                    raise CodeJuryError(f"tansu exited unexpectedly; its log: {running.log_path}")
        except KeyboardInterrupt:
            pass


@app.command()
def worker(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Worker node name (unique per host).")] = "codejury",
    concurrency: Annotated[
        int | None, typer.Option(help="Worker processes (env CODEJURY_CELERY__WORKER_CONCURRENCY).")
    ] = None,
    unsafe_no_sandbox: Annotated[
        bool, typer.Option("--unsafe-no-sandbox", help="Run programs WITHOUT isolation.")
    ] = False,
    health_port: Annotated[
        int | None,
        typer.Option(
            help="Serve grpc.health.v1 on this port (0.0.0.0): SERVING once the worker "
            "consumes, NOT_SERVING from its warm shutdown (the pod's probes)."
        ),
    ] = None,
) -> None:
    """Run a Celery worker for sandbox runs (warm shutdown on SIGTERM)."""
    from codejury.cli.execution import with_unsafe
    from codejury.core.processes import die_with_parent

    die_with_parent()  # started by a deployment: a warm shutdown when it dies
    settings = with_unsafe(settings_of(ctx), unsafe_no_sandbox)
    counts = None
    if settings.metrics.port is not None:
        # The runs happen in the prefork pool's processes: they count into files here,
        # which the endpoint reads. Set before prometheus_client is imported (it picks
        # where values live at import; nothing above imports it).
        counts = settings.run_dir.resolve() / "metrics" / f"worker-{name}"
        counts.mkdir(parents=True, exist_ok=True)
        for stale in counts.glob("*.db"):  # an earlier worker's counts are not ours
            stale.unlink()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(counts)

    from celery import signals

    from codejury.core.grpc import health_server
    from codejury.execution.celery_app import make_celery_app
    from codejury.execution.factory import make_executor

    # Refuse to start (one clear line) rather than accept tasks the sandbox cannot run.
    make_executor(settings, warm=False)
    start_metrics(settings, multiprocess_dir=counts)
    celery_app = make_celery_app(settings)
    health = None
    if health_port is not None:
        probe = health_server("0.0.0.0", health_port)  # noqa: S104 - a pod's probe port
        probe.start(serving=False)
        # weak=False: the receivers are closures that would otherwise be collected.
        signals.worker_ready.connect(lambda **_: probe.set_serving(True), weak=False)
        signals.worker_shutting_down.connect(lambda **_: probe.set_serving(False), weak=False)
        health = probe
    try:
        celery_app.worker_main(
            [
                "worker",
                f"--hostname={name}@%h",
                f"--concurrency={concurrency or settings.celery.worker_concurrency}",
                f"--loglevel={settings.log_level}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        if health is not None:
            health.stop(grace_s=1)


@app.command()
def protos(
    check: Annotated[
        bool, typer.Option("--check", help="Only report stale stubs; exit 1 if any.")
    ] = False,
) -> None:
    """Regenerate the Python stubs from protos/codejury/v1 (needs the dev extra)."""
    from codejury.proto.generate import STUB_DIR, default_proto_root, generate, stale_files

    root = default_proto_root()
    if check:
        stale = stale_files(root)
        if stale:
            err_console.print(f"stale stubs: {', '.join(stale)}; run `codejury protos`")
            raise typer.Exit(1)
        console.print("stubs are up to date")
        return
    written = generate(root, STUB_DIR)
    console.print(f"wrote {len(written)} files to {STUB_DIR}")
