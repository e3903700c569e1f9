"""Pipeline commands: ``up`` (everything embedded), ``serve solve`` and the ``solve`` client."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from google.protobuf import json_format
from rich.table import Table

from codejury.cli.app import (
    app,
    bench_app,
    console,
    err_console,
    quiet_run,
    read_input,
    serve_app,
    settings_of,
    start_metrics,
    stop_signal,
)
from codejury.proto.v1 import domain_pb2, services_pb2

if TYPE_CHECKING:
    from codejury.pipeline.embedded import EmbeddedPipeline
    from codejury.pipeline.load_report import LoadReport


@serve_app.command("solve")
def serve_solve(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="gRPC port (env CODEJURY_PIPELINE__GRPC_PORT).")
    ] = None,
) -> None:
    """The Solve front door until SIGTERM/Ctrl-C: publishes solve.requested and answers
    from solve.completed (the stages run in their own `serve ... --kafka-stage`). With
    pipeline.stage_health it checks the stages' health and fails fast while one is down."""
    from codejury.pipeline.front_door import SolveFrontDoor

    settings = settings_of(ctx)
    stop = stop_signal()
    start_metrics(settings)
    with SolveFrontDoor(settings, port=port) as door:
        console.print(
            f"Solve service on {door.host}:{door.port} (at most "
            f"{settings.pipeline.max_in_flight} requests in flight)",
            highlight=False,
        )
        if door.watch is None:
            err_console.print(
                "no stage health watch (CODEJURY_PIPELINE__STAGE_HEALTH unset): while a stage "
                "is down, requests wait out their deadline",
                highlight=False,
            )
        else:
            stages = ", ".join(f"{stage} at {a}" for stage, a in door.watch.targets.items())
            console.print(f"watching the stages' health: {stages}", highlight=False)
        print(f"READY port={door.port}", flush=True)
        stop.wait()


def _served(pipeline: EmbeddedPipeline) -> str:
    """The served reranker version, marked when it is an untrained head."""
    from codejury.reranking.registry import ModelRegistry, registry_uri

    version = pipeline.reranker_version or "?"
    registry = ModelRegistry.from_uri(registry_uri(pipeline.settings))
    if pipeline.reranker_version and registry.get(pipeline.reranker_version).untrained:
        return f"{version}, UNTRAINED: picks are near-random"
    return version


@app.command()
def up(ctx: typer.Context) -> None:
    """Start everything embedded: tansu, a Celery worker, the generation, execution and
    reranking services with their Kafka stages (and the KServe reranker), and the Solve
    front door. Prints the addresses; Ctrl-C stops it all. The first start trains the
    reranker it serves (`codejury train first-reranker`) unless one is registered."""
    from codejury.cli.training import ensure_first_reranker
    from codejury.pipeline.embedded import EmbeddedPipeline

    settings = settings_of(ctx)
    quiet_run(settings)
    ensure_first_reranker(settings)
    stop = stop_signal()
    start_metrics(settings)  # this process: the Solve front door; the others count on
    with console.status("starting") as status:
        pipeline = EmbeddedPipeline(settings, progress=status.update)
        pipeline.start()
    try:
        table = Table(title=f"codejury up (reranker {_served(pipeline)})")
        for column in ("service", "address", ""):
            table.add_column(column)
        for endpoint in pipeline.endpoints():
            table.add_row(endpoint.name, endpoint.address, endpoint.what)
        console.print(table)
        console.print(
            f"try: codejury solve --target {pipeline.solve_address} -l python prompt.py   "
            "(Ctrl-C stops everything)",
            highlight=False,
        )
        print(f"READY port={pipeline.front_door.port if pipeline.front_door else 0}", flush=True)
        # a service that dies is reported and started again (with backoff) until Ctrl-C
        while not stop.wait(1.0):
            for line in pipeline.supervise():
                err_console.print(line, highlight=False, markup=False)
    finally:
        with console.status("stopping") as status:
            pipeline.progress = status.update
            pipeline.stop()
        console.print("stopped")


class SelectionChoice(StrEnum):
    AUTO = "auto"
    EXECUTION_FIRST = "execution-first"
    RERANKER_ONLY = "reranker-only"

    @property
    def proto(self) -> domain_pb2.Selection:
        return {
            SelectionChoice.AUTO: domain_pb2.SELECTION_UNSPECIFIED,
            SelectionChoice.EXECUTION_FIRST: domain_pb2.SELECTION_EXECUTION_FIRST,
            SelectionChoice.RERANKER_ONLY: domain_pb2.SELECTION_RERANKER_ONLY,
        }[self]


def selection_note(response: services_pb2.SolveResponse) -> str:
    """One line: how the answer was picked, and the reward model's own pick where the
    tests overruled it."""
    if response.selection != domain_pb2.SELECTION_EXECUTION_FIRST:
        return "selection: reranker only (the reward model's top score)"
    chosen = next(
        (r for r in response.results if r.candidate_id == response.chosen.candidate_id), None
    )
    if chosen is not None and chosen.status == domain_pb2.PASSED:
        note = "selection: execution first (the best-scored candidate that passed the tests)"
    else:
        note = "selection: execution first, but no candidate passed: the best-scored of the rest"
    if not response.scores:
        return note
    top = max(response.scores, key=lambda s: s.score)
    if top.candidate_id != response.chosen.candidate_id:
        index = next(c.index for c in response.candidates if c.candidate_id == top.candidate_id)
        note += f"; the reward model alone would have picked #{index}"
    return note


@app.command()
def solve(
    ctx: typer.Context,
    prompt: Annotated[
        Path, typer.Argument(help="File with the code to complete ('-': read stdin).")
    ],
    language: Annotated[str, typer.Option("--language", "-l", help="Language, e.g. python.")],
    tests: Annotated[
        Path | None, typer.Option(help="Tests appended to the program (enables execution).")
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="Candidates to sample.")] = 8,
    target: Annotated[
        str | None, typer.Option(help="Solve server host:port; default: the pipeline settings.")
    ] = None,
    deadline: Annotated[float, typer.Option(min=0, help="Seconds; 0: the server's default.")] = 0,
    temperature: Annotated[float, typer.Option(min=0, help="0: the generator's default.")] = 0,
    seed: Annotated[int, typer.Option(min=0, help="0: derived from the request id.")] = 0,
    selection: Annotated[
        SelectionChoice,
        typer.Option(
            help="How the answer is picked: auto (execution first when --tests is given), "
            "execution-first (the best-scored PASSED candidate) or reranker-only (the "
            "reward model's pick, tests or not: the paper's setting)."
        ),
    ] = SelectionChoice.AUTO,
    output_json: Annotated[
        bool, typer.Option("--json", help="Print the whole SolveResponse as JSON.")
    ] = False,
) -> None:
    """Ask the pipeline for a program: N candidates, run against the tests if given,
    ranked by the reranker (by default a candidate that passed the tests wins over one
    the reranker liked better). Prints the chosen one and a table of all of them."""
    from codejury.pipeline.client import client_for

    settings = settings_of(ctx)
    text = read_input(prompt, "PROMPT")
    problem = domain_pb2.Problem(
        problem_id=prompt.stem if str(prompt) != "-" else "stdin",
        language=language,
        prompt=text,
        tests=read_input(tests, "--tests") if tests is not None else "",
    )
    address = target or f"{settings.pipeline.grpc_host}:{settings.pipeline.grpc_port}"
    sampling = domain_pb2.SamplingParams(temperature=temperature, seed=seed)
    with (
        client_for(address, settings) as client,
        console.status(f"solving ({n} candidates)"),
    ):
        response = client.solve(
            problem, n, sampling=sampling, deadline_s=deadline, selection=selection.proto
        )
    if output_json:
        print(json.dumps(json_format.MessageToDict(response), indent=2))
        return
    print_response(response)


def print_response(response: services_pb2.SolveResponse) -> None:
    results = {r.candidate_id: r for r in response.results}
    scores = {s.candidate_id: s.score for s in response.scores}
    table = Table(title=f"request {response.request_id}: reranker {response.reranker_version}")
    for column in ("#", "score", "status", "mean logprob", "tokens", "chosen"):
        table.add_column(column)
    for candidate in response.candidates:
        result = results.get(candidate.candidate_id)
        table.add_row(
            str(candidate.index),
            f"{scores.get(candidate.candidate_id, float('nan')):.3f}",
            domain_pb2.ExecutionStatus.Name(result.status) if result else "not run",
            f"{candidate.logprob_mean:.3f}",
            str(candidate.completion_tokens),
            "*" if candidate.candidate_id == response.chosen.candidate_id else "",
        )
    console.print(table)
    console.print(selection_note(response))
    console.rule("chosen completion")
    console.print(response.chosen.completion, markup=False, highlight=False)


@bench_app.command("pipeline")
def bench_pipeline(
    ctx: typer.Context,
    concurrency: Annotated[str, typer.Option(help="Comma-separated concurrencies.")] = "1,4,16",
    requests: Annotated[
        int,
        typer.Option(
            min=1, help="Solve requests per concurrency (--observability: per round and mode)."
        ),
    ] = 32,
    n: Annotated[int, typer.Option("--n", min=1, help="Candidates per request.")] = 4,
    output: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    observability: Annotated[
        bool,
        typer.Option(
            "--observability",
            help="Instead: the pipeline with metrics and tracing off against on (every "
            "process serving /metrics, scraped, and exporting spans over OTLP), side by side.",
        ),
    ] = False,
    rounds: Annotated[
        int,
        typer.Option(min=2, help="--observability: alternating rounds per mode (--requests each)."),
    ] = 4,
    scrape_interval: Annotated[
        float, typer.Option(min=0.5, help="--observability: seconds between scrapes.")
    ] = 5.0,
) -> None:
    """Solve requests/s and p50/p99 latency through the Kafka pipeline against the same
    work done by calling the three services in process, with tiny models, in one run;
    with --observability, what metrics and tracing cost the pipeline's throughput."""
    from codejury.cli.bench import bench_observability, bench_root
    from codejury.pipeline.bench import DIRECT, PIPELINE, bench_settings, measure

    levels = [int(c) for c in concurrency.split(",") if c.strip()]
    quiet_run(settings_of(ctx))
    if observability:
        target = output or settings_of(ctx).run_dir / "bench" / "observability.json"
        bench_observability(
            levels, requests=requests, n=n, rounds=rounds, scrape_interval_s=scrape_interval
        ).write(target)
        return
    with bench_root() as root, console.status("building tiny models") as status:
        settings = bench_settings(root)
        runs = measure(settings, levels, requests_per_level=requests, n=n, progress=status.update)
    table = Table(title=f"codejury bench pipeline: {requests} requests per level, n={n}")
    for column in ("concurrency", "mode", "req/s", "p50 ms", "p99 ms", "p50 vs direct"):
        table.add_column(column, justify="right")
    rows = []
    by_key = {(r.mode, r.concurrency): r for r in runs}
    for run in runs:
        direct = by_key[(DIRECT, run.concurrency)]
        ratio = run.median / direct.median if direct.median else 0.0
        table.add_row(
            str(run.concurrency),
            run.mode,
            f"{run.per_second:.2f}",
            f"{run.percentile(0.5) * 1000:.0f}",
            f"{run.percentile(0.99) * 1000:.0f}",
            f"{ratio:.2f}x" if run.mode == PIPELINE else "1.00x",
        )
        rows.append(
            {
                "mode": run.mode,
                "concurrency": run.concurrency,
                "requests": run.requests,
                "requests_per_s": round(run.per_second, 3),
                "p50_ms": round(run.percentile(0.5) * 1000, 1),
                "p99_ms": round(run.percentile(0.99) * 1000, 1),
                "p50_ratio_to_direct": round(ratio, 3),
            }
        )
    console.print(table)
    target = output or settings_of(ctx).run_dir / "bench" / "pipeline.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(rows, indent=2))
    console.print(f"report: {target}")


@bench_app.command("load")
def bench_load(
    ctx: typer.Context,
    duration: Annotated[
        float,
        typer.Option(min=120, max=3600, help="Seconds of load (the faults are spread over it)."),
    ] = 600,
    rate: Annotated[
        float, typer.Option(min=0.01, max=10, help="Solve requests per second, open loop.")
    ] = 0.5,
    n: Annotated[int, typer.Option("--n", min=1, max=16, help="Candidates per request.")] = 2,
    deadline: Annotated[
        float, typer.Option(min=10, max=600, help="Each request's deadline_s.")
    ] = 120,
    output: Annotated[
        Path | None, typer.Option(help="The JSON report; default <run_dir>/bench/load.json.")
    ] = None,
) -> None:
    """A load and fault test of the embedded deployment (loopback, tiny models): Solve at a
    fixed rate while each stage, the Celery worker and the KServe model server are killed
    once (SIGKILL) and bad records and bad requests are sent. Reports sent / answered /
    failed by code / lost / answered twice, latency before, during and after each fault,
    time to recover, and the dead letters. Exits 1 if anything was lost or answered twice,
    a fault never recovered, or a bad request was not refused."""
    import dataclasses
    import shutil
    import tempfile

    from codejury.pipeline.bench import bench_settings
    from codejury.pipeline.load import LoadPlan, run_load_test

    settings = settings_of(ctx)
    quiet_run(settings)
    plan = LoadPlan(duration_s=duration, rate=rate, n=n, deadline_s=deadline)
    target = output or settings.run_dir / "bench" / "load.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    logs = target.parent / "load-logs"  # every service's log, kept for what went wrong
    with tempfile.TemporaryDirectory(prefix="codejury-bench-load-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # the sandbox user reads the compile cache under it
        bench = bench_settings(root)
        try:
            with console.status("building tiny models") as status:
                report = run_load_test(bench, plan, progress=status.update)
        finally:
            shutil.rmtree(logs, ignore_errors=True)
            shutil.copytree(bench.run_dir / "logs", logs, dirs_exist_ok=True)
    print_load_report(report)
    target.write_text(json.dumps({**dataclasses.asdict(report), "passed": report.passed}, indent=2))
    console.print(f"report: {target}; the services' logs: {logs}")
    if not report.passed:
        raise typer.Exit(1)


def print_load_report(report: LoadReport) -> None:
    o, d = report.outcomes, report.duplicates
    failed = ", ".join(f"{code} {count}" for code, count in o.failed.items()) or "none"
    console.print(
        f"{report.duration_s:g}s at {report.rate:g}/s: sent {o.sent}, answered {o.answered}, "
        f"failed {o.failed_total} ({failed}), lost {len(o.lost)}, answered twice "
        f"{len(d.answered_twice)}, feedback twice {len(d.feedback_twice)} (replayed records, "
        f"dropped by id: {d.replayed_records})",
        highlight=False,
    )

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    table = Table(title="codejury bench load: latency of OK answers by window (ms)")
    for column in ("fault", "at s", "recovered in s", "window", "sent", "ok", "failed"):
        table.add_column(column)
    for column in ("p50", "p99"):
        table.add_column(column, justify="right")
    for fault in report.faults:
        for name, w in (("before", fault.before), ("during", fault.during), ("after", fault.after)):
            first = name == "before"
            table.add_row(
                str(fault.kind) if first else "",
                f"{fault.at_s:.0f}" if first else "",
                ("never" if fault.recovery_s is None else f"{fault.recovery_s:.1f}")
                if first
                else "",
                name,
                str(w.sent),
                str(w.answered),
                ", ".join(f"{c} {k}" for c, k in w.failed.items()),
                ms(w.p50_ms),
                ms(w.p99_ms),
            )
    console.print(table)
    letters = Table(title="dead letters")
    for column in ("topic", "error type", "count"):
        letters.add_column(column)
    for topic, by_type in report.dead_letters.items():
        for error_type, count in by_type.items():
            letters.add_row(topic, error_type, str(count))
    console.print(letters)
    if report.probes:
        console.print(
            "bad requests: " + ", ".join(f"{k} -> {v}" for k, v in report.probes.items()),
            highlight=False,
            markup=False,
        )
    for note in report.notes:
        console.print(note, highlight=False, markup=False)
