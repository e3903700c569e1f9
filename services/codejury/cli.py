"""The ``codejury`` command line. Settings are built here, once, and passed down."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from codejury.core.errors import CodeJuryError, ConfigurationError
from codejury.core.logging import configure_logging
from codejury.core.settings import ENV_PREFIX, NESTED_DELIMITER, Settings, load_settings

app = typer.Typer(
    name="codejury",
    help="CodeJury: sample N programs, run them in a sandbox, let a learned reranker pick one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@app.callback()
def _root(
    ctx: typer.Context,
    run_dir: Annotated[
        Path | None, typer.Option(help="State, logs and artefacts (env CODEJURY_RUN_DIR).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR (env CODEJURY_LOG_LEVEL).")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="console or json (env CODEJURY_LOG_FORMAT).")
    ] = None,
) -> None:
    overrides: dict[str, Any] = {}
    if run_dir is not None:
        overrides["run_dir"] = run_dir
    if log_level is not None:
        overrides["log_level"] = log_level.upper()
    if log_format is not None:
        overrides["log_format"] = log_format
    settings = load_settings(overrides)
    configure_logging(settings)
    ctx.obj = settings


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
    settings = _settings(ctx)
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

    settings = _settings(ctx)
    broker_settings = settings.broker.model_copy(update={"port": port or settings.broker.port})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
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
) -> None:
    """Run a Celery worker for sandbox runs (warm shutdown on SIGTERM)."""
    from codejury.execution.celery_app import make_celery_app

    settings = _settings(ctx)
    celery_app = make_celery_app(settings)
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


@app.command()
def demo(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option(min=1, max=1000, help="Solve requests to send.")] = 5,
) -> None:
    """The main job. For now: a plumbing check of the embedded deployment.

    Starts tansu and a Celery worker, pushes solve requests through a stage consumer
    that hands each to a worker, and shows what arrived where (including the
    dead-letter topic and a duplicate dropped by event id).
    """
    from codejury.pipeline.smoke import run_smoke

    settings = _settings(ctx)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("events", total=requests + 2)
        report = run_smoke(
            settings,
            requests=requests,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    table = Table(title=f"codejury.solve.completed (broker {report.bootstrap_servers})")
    for column in ("request", "trace id", "event id", "worker pid", "latency ms"):
        table.add_column(column)
    for c in sorted(report.completed, key=lambda c: c.request_id):
        table.add_row(
            c.request_id, c.trace_id[:12], c.event_id[:12], str(c.worker_pid), f"{c.latency_ms:.0f}"
        )
    console.print(table)
    dlq_table = Table(title="dead-letter topic")
    dlq_table.add_column("source topic")
    dlq_table.add_column("error")
    for d in report.dead_letters:
        dlq_table.add_row(d.source_topic, d.error)
    console.print(dlq_table)
    stats = report.stage
    console.print(
        f"published {report.published} records; stage handled {stats.handled}, "
        f"dropped {stats.duplicates} duplicate(s), dead-lettered {stats.dead_lettered}, "
        f"committed {stats.commits} time(s); Celery worker pid {report.worker_pid}"
    )
    console.print(f"logs: {settings.run_dir.resolve() / 'logs'}")
    ok = len(report.completed) == requests and len(report.dead_letters) == 2
    if not ok:
        raise CodeJuryError(
            f"expected {requests} completions and 2 dead letters, got "
            f"{len(report.completed)} and {len(report.dead_letters)}"
        )


def main() -> None:
    """Entry point: one clear error line instead of a traceback for known errors."""
    import click

    try:
        code = app(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigurationError as exc:
        err_console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        sys.exit(2)
    except CodeJuryError as exc:
        err_console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
