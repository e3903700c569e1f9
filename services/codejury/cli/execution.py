"""Execution commands: ``exec`` (a debugging aid) and ``serve execution``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from codejury.cli.app import (
    app,
    console,
    read_input,
    running_stage,
    serve_app,
    settings_of,
    start_metrics,
    start_tracing,
    stop_signal,
)
from codejury.core.settings import Settings, with_group

UnsafeFlag = Annotated[
    bool,
    typer.Option(
        "--unsafe-no-sandbox",
        help="Run programs WITHOUT isolation (no bubblewrap, no cgroups). Only for "
        "machines where the sandbox cannot run and the code is trusted; warns on every run.",
    ),
]


def with_unsafe(settings: Settings, unsafe: bool) -> Settings:
    if not unsafe:
        return settings
    return with_group(settings, "execution", unsafe_no_sandbox=True)


def _languages_table() -> Table:
    from codejury.execution.service import list_languages

    table = Table("language", "aliases", "compiled", "available", "why not / how to install")
    for info in list_languages():
        table.add_row(
            info.name,
            ", ".join(info.aliases),
            "yes" if info.compiled else "",
            "[green]yes[/]" if info.available else "[red]no[/]",
            info.reason,
        )
    return table


@app.command("exec")
def exec_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(help="Program file, or - for standard input.")
    ] = None,
    language: Annotated[
        str | None, typer.Option("--language", "-l", help="Language name or alias.")
    ] = None,
    tests: Annotated[
        Path | None, typer.Option(help="Test code appended after the program (MultiPL-E style).")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Wall-clock limit in seconds.")] = None,
    list_languages: Annotated[
        bool, typer.Option("--list-languages", help="Show the languages and whether they run here.")
    ] = False,
    unsafe_no_sandbox: UnsafeFlag = False,
) -> None:
    """Run one program in the sandbox and show its status (exit code 0 only if PASSED)."""
    if list_languages:
        console.print(_languages_table())
        return
    if file is None or language is None:
        raise typer.BadParameter("give a FILE and --language (or --list-languages)")
    from dataclasses import replace

    from codejury.execution.factory import make_executor
    from codejury.proto.v1 import domain_pb2

    settings = with_unsafe(settings_of(ctx), unsafe_no_sandbox)
    program = read_input(file, "FILE")
    if tests is not None:
        program = program + "\n" + read_input(tests, "--tests")
    executor = make_executor(settings, warm=False)
    limits = executor.config.default_limits
    if timeout is not None:
        limits = replace(limits, timeout_s=timeout)
    result = executor.run_program(language, program, limits)
    status = domain_pb2.ExecutionStatus.Name(result.status)
    colour = "green" if result.status == domain_pb2.PASSED else "red"
    console.print(f"[bold {colour}]{status}[/] {result.detail}")
    console.print(
        f"exit {result.exit_code}, wall {result.wall_time_ms:.0f} ms, "
        f"cpu {result.cpu_time_ms:.0f} ms, "
        f"compile {result.compile_time_ms:.0f} ms, peak memory {result.max_memory_bytes >> 20} MiB"
    )
    for name, text, cut in (
        ("stdout", result.stdout, result.stdout_truncated),
        ("stderr", result.stderr, result.stderr_truncated),
    ):
        if text:
            console.rule(name + (" (truncated)" if cut else ""))
            console.print(text, markup=False, highlight=False, end="")
    if result.status != domain_pb2.PASSED:
        raise typer.Exit(1)


@serve_app.command("execution")
def serve_execution(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="gRPC port (env CODEJURY_EXECUTION__GRPC_PORT).")
    ] = None,
    local: Annotated[
        bool,
        typer.Option("--local", help="Run programs in this process instead of Celery workers."),
    ] = False,
    kafka_stage: Annotated[
        bool,
        typer.Option(
            "--kafka-stage",
            help="Also run the Kafka stage: candidates.generated -> candidates.executed.",
        ),
    ] = False,
    unsafe_no_sandbox: UnsafeFlag = False,
) -> None:
    """The Execution gRPC service (Execute, ExecuteBatch, ListLanguages) until SIGTERM/Ctrl-C."""
    from codejury.core.grpc import make_server
    from codejury.core.tls import server_credentials
    from codejury.execution.factory import default_limits, open_backend
    from codejury.execution.service import ExecutionServicer, register

    settings = with_unsafe(settings_of(ctx), unsafe_no_sandbox)
    start_metrics(settings)
    tracing = start_tracing(settings, "execution")
    # in-process: this process's sandbox (closed on the way out); else the Celery workers
    with open_backend(settings, "in-process" if local else "celery", tracing=tracing) as backend:
        servicer = ExecutionServicer(settings, backend)
        served = make_server(
            [register(servicer)],
            host=settings.execution.grpc_host,
            port=settings.execution.grpc_port if port is None else port,
            max_workers=max(4, settings.execution.max_batch // 16),
            credentials=server_credentials(settings.tls),
            probe_port=settings.tls.probe_port,
            reflection=settings.grpc.reflection,
            tracing=tracing,
        )
        stop = stop_signal()
        consumer = None
        if kafka_stage:
            from codejury.bus.consumer import EventConsumer
            from codejury.bus.replies import solve_failed
            from codejury.bus.topics import CANDIDATES_GENERATED
            from codejury.execution.stage import make_handler

            consumer = EventConsumer(
                settings.bus,
                group_id="codejury-execution",
                topics=[CANDIDATES_GENERATED],
                handler=make_handler(
                    backend,
                    default_limits(settings),
                    max_batch=settings.execution.max_batch,
                    max_program_bytes=settings.execution.max_program_kb << 10,
                ),
                name="execution-stage",
                on_dead_letter=solve_failed,  # the caller hears the error, not its deadline
                drop_expired=True,  # past its deadline nobody waits for the answer
                tracing=tracing,
                concurrency=settings.execution.stage_concurrency,
            )
        with running_stage(
            consumer, join_timeout_s=settings.celery.result_timeout_s, stop=stop
        ) as watch:
            served.start()
            console.print(
                f"Execution service on {settings.execution.grpc_host}:{served.port} "
                f"({'in-process' if local else 'Celery workers'}"
                f"{', Kafka stage on' if consumer else ''})",
                highlight=False,
            )
            print(f"READY port={served.port}", flush=True)  # a line scripts and tests can wait for
            stop.wait()
        served.stop(grace_s=10)
        watch.raise_if_died()
