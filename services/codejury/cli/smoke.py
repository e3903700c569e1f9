"""``codejury smoke``: a plumbing check of the embedded broker, a stage and Celery."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from codejury.cli.app import app, console, settings_of
from codejury.core.errors import CodeJuryError


@app.command()
def smoke(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option(min=1, max=1000, help="Solve requests to send.")] = 5,
) -> None:
    """A plumbing check of the embedded deployment (no models; seconds).

    Starts tansu and a Celery worker, pushes solve requests through a stage consumer
    that hands each to a worker, and shows what arrived where (including the
    dead-letter topic and a duplicate dropped by event id).
    """
    from codejury.pipeline.smoke import run_smoke

    settings = settings_of(ctx)
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
