"""``codejury bench method``: the paper's Table 1 shape with bootstrap intervals (issue 18).

Greedy, random pick, mean log-prob, the reward model of iterations 0..K and the oracle
on MultiPL-E HumanEval, N samples per problem from the demo generator, every row with a
95% bootstrap interval over problems and the paired comparisons with theirs. A long run
on CPU that resumes where it stopped; the steps live in ``demo.method``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from codejury.cli.app import bench_app, console, data_dir, quiet_run, settings_of
from codejury.cli.evaluation import PAPER_REFERENCES, _duration, _problems, sample_outcomes
from codejury.core.errors import ConfigurationError
from codejury.core.files import write_text_atomic
from codejury.evaluation.length_bias import LengthReport, describe, length_report
from codejury.evaluation.method_table import MethodTable, cell, method_table, to_markdown

if TYPE_CHECKING:
    from codejury.core.settings import Settings
    from codejury.demo.method import IterationRecord, Ledger
    from codejury.demo.self_training import IterationSize
    from codejury.evaluation.datasets import BenchmarkProblem
    from codejury.evaluation.metrics import ProblemOutcome
    from codejury.pipeline.evaluate import EvalPlan

METHOD_LANGUAGES = "python,javascript,cpp,java"


@bench_app.command("method")
def bench_method(
    ctx: typer.Context,
    languages: Annotated[
        str, typer.Option(help="Comma-separated MultiPL-E HumanEval languages.")
    ] = METHOD_LANGUAGES,
    limit: Annotated[
        int | None, typer.Option(min=1, help="First problems per language; default: all.")
    ] = None,
    n: Annotated[int, typer.Option("--n", min=2, help="Samples per problem.")] = 8,
    iterations: Annotated[
        int, typer.Option(min=0, help="Self-training iterations after iteration 0.")
    ] = 2,
    seed: Annotated[int, typer.Option(min=1, help="Base seed of the samples.")] = 1234,
    max_new_tokens: Annotated[
        int, typer.Option(min=16, help="Most tokens per sample (the demo's 160 by default).")
    ] = 160,
    greedy: Annotated[bool, typer.Option(help="Also one greedy sample per problem.")] = True,
    size: Annotated[
        str,
        typer.Option(
            help="Iteration sizes: cpu (the demo's: minutes each), gpu (bigger), or auto "
            "(gpu when CUDA is available)."
        ),
    ] = "auto",
    training_languages: Annotated[
        str | None,
        typer.Option(help="MBXP languages the reward model trains on; default: --languages."),
    ] = None,
    cold_start_problems: Annotated[
        int | None, typer.Option(min=2, help="Override: MBXP solutions per language mutated.")
    ] = None,
    training_problems: Annotated[
        int | None, typer.Option(min=1, help="Override: MBXP problems per language per iteration.")
    ] = None,
    ppo_steps: Annotated[int | None, typer.Option(min=1, help="Override: PPO steps.")] = None,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 10_000,
    data: Annotated[Path | None, typer.Option("--data-dir", help="Benchmark data folder.")] = None,
) -> None:
    """The paper's table with intervals: MultiPL-E HumanEval, greedy / random / mean
    log-prob / reward model iterations 0..K / oracle, 95% bootstrap intervals over
    problems and paired comparisons. Resumes: problems sampled, iterations registered and
    scores computed are kept under <run_dir>/bench/method."""
    from dataclasses import replace

    from codejury.demo.method import (
        LEDGER_FILE,
        Ledger,
        bench_settings,
        check_sampling,
        sampling_fingerprint,
        table_spec,
    )
    from codejury.pipeline.evaluate import EvalPlan

    started = time.monotonic()
    base = settings_of(ctx)
    root = data_dir(base, data)
    names = [x.strip() for x in languages.split(",") if x.strip()]
    trained_on = [x.strip() for x in (training_languages or languages).split(",") if x.strip()]
    chosen = _size(size)
    overrides = {
        "cold_start_problems": cold_start_problems,
        "training_problems": training_problems,
        "ppo_steps": ppo_steps,
    }
    chosen = replace(chosen, **{k: v for k, v in overrides.items() if v is not None})
    settings = bench_settings(
        base.model_copy(update={"data_dir": root}),
        training_languages=trained_on,
        size=chosen,
        max_new_tokens=max_new_tokens,
    )
    folder = settings.run_dir
    folder.mkdir(parents=True, exist_ok=True)
    plan = EvalPlan(n=n, greedy=greedy, seed=seed, max_new_tokens=max_new_tokens)
    check_sampling(
        folder,
        sampling_fingerprint(
            settings, n=n, seed=seed, temperature=plan.temperature, top_p=plan.top_p
        )
        | {"greedy": greedy},
    )
    problems = _problems(settings, "multipl-e/humaneval", names, limit)
    ledger = Ledger(folder / LEDGER_FILE)
    console.print(
        f"[bold]bench method[/]: {len(problems)} MultiPL-E HumanEval problems "
        f"({', '.join(names)}), n={n}, iterations 0..{iterations}, in {folder}",
        highlight=False,
    )

    quiet_run(settings)
    _iteration_zero(settings, ledger)
    outcomes = _sampled(settings, problems, plan, ledger)
    records, outcomes = _trained_and_scored(settings, ledger, iterations, root, outcomes, problems)

    with console.status(f"bootstrap intervals ({resamples} resamples)"):
        rows, comparisons = table_spec(iterations, greedy=greedy)
        table = method_table(
            outcomes,
            rows,
            comparisons,
            n_resamples=resamples,
            seed=seed,
            references={k: v["average"] for k, v in PAPER_REFERENCES.items()},
        )
    # the table's own ranker rows name the rankers whose length preference is reported
    rankers = {spec.ranker: spec.label for spec in rows if spec.ranker is not None}
    lengths = length_report(outcomes, list(rankers))
    report = {
        "command": "codejury bench method",
        "sampling": json.loads((folder / "sampling.json").read_text()),
        "languages": names,
        "training_languages": trained_on,
        "limit": limit,
        "iteration_size": asdict(chosen),
    }
    _print_and_write(
        table,
        records,
        lengths,
        describe(lengths, rankers),
        ledger,
        report,
        started,
        title=f"bench method: MultiPL-E HumanEval, n={n}",
    )


def _iteration_zero(settings: Settings, ledger: Ledger) -> None:
    """The first trained reranker (what the embedded pipeline serves), recorded once."""
    from codejury.cli.training import ensure_first_reranker
    from codejury.demo.method import iteration_record, registry_of
    from codejury.training.first_reranker import needs_training

    if 0 in ledger.iterations:
        return
    registry = registry_of(settings)
    t0 = time.monotonic()
    ensure_first_reranker(settings)
    if needs_training(registry):
        raise ConfigurationError(
            "iteration 0 needs the first trained reranker and training it failed (see "
            f"above); fix that, then rerun (or run `codejury --run-dir {settings.run_dir} "
            "train first-reranker`)"
        )
    seconds = time.monotonic() - t0
    ledger.record(iteration_record(registry, 0, registry.resolve("stable"), seconds))
    ledger.add_time("iteration 0", seconds)


def _sampled(
    settings: Settings, problems: list[BenchmarkProblem], plan: EvalPlan, ledger: Ledger
) -> list[ProblemOutcome]:
    """Every problem's outcome: from the log, after sampling the problems it lacks."""
    from codejury.demo.method import OUTCOMES_FILE
    from codejury.evaluation import outcome_log

    path = settings.run_dir / OUTCOMES_FILE
    todo = outcome_log.pending(problems, outcome_log.read(path))
    if todo:
        console.print(f"sampling {len(todo)} problems ({len(problems) - len(todo)} done before)")
        t0 = time.monotonic()
        log = outcome_log.OutcomeLog(path)
        try:
            sample_outcomes(settings, todo, plan, None, on_done=log.append)
        finally:  # an interrupted run's sampling counts too: its problems are logged
            ledger.add_time("sampling", time.monotonic() - t0)
    done = outcome_log.read(path)
    return [done[outcome_log.key_of(p)] for p in problems]


def _trained_and_scored(
    settings: Settings,
    ledger: Ledger,
    iterations: int,
    root: Path,
    outcomes: list[ProblemOutcome],
    problems: list[BenchmarkProblem],
) -> tuple[list[IterationRecord], list[ProblemOutcome]]:
    """Iterations 1..K (resumable by step), then every version's scores of the same
    cached candidates added to the outcomes as one ranker each."""
    from codejury.demo.method import iteration_ranker, scores_for, train_iterations, with_scores
    from codejury.execution.factory import open_backend
    from codejury.reranking.model import apply_torch_threads

    apply_torch_threads(settings.training.torch_threads)
    with Progress(console=console) as progress:
        task = progress.add_task("self-training", total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        t0 = time.monotonic()
        records = train_iterations(
            settings,
            ledger,
            iterations=iterations,
            data_dir=root,
            backend=lambda: open_backend(settings, "worker"),
            report=lambda line: progress.console.print(line, highlight=False),
            progress=advance,
        )
        if iterations:
            ledger.add_time("iterations 1..K", time.monotonic() - t0)
        t0 = time.monotonic()
        for record in records:
            progress.update(task, description=f"scores of {record.version}", completed=0)
            scores = scores_for(settings, record.version, outcomes, problems, progress=advance)
            outcomes = with_scores(outcomes, iteration_ranker(record.iteration), scores)
        ledger.add_time("scoring", time.monotonic() - t0)
    return records, outcomes


def _print_and_write(
    table: MethodTable,
    records: list[IterationRecord],
    lengths: LengthReport,
    length_lines: list[str],
    ledger: Ledger,
    report: dict[str, Any],
    started: float,
    *,
    title: str,
) -> None:
    folder = ledger.path.parent
    wall = time.monotonic() - started
    console.print(_rich_table(table, title))
    console.print(_rich_comparisons(table))
    versions = Table(title="reward-model versions (each rescored the same cached candidates)")
    for column in ("iteration", "version", "parent", "snapshot", "MBXP held-out", "trained in"):
        versions.add_column(column)
    for r in records:
        held = "-" if r.heldout_pass_at_1 is None else f"{100 * r.heldout_pass_at_1:.1f}"
        versions.add_row(
            str(r.iteration), r.version, r.parent or "-", r.snapshot_id, held, _duration(r.seconds)
        )
    console.print(versions)
    for line in length_lines:
        console.print(line, highlight=False)
    report |= {
        "iterations": [asdict(r) for r in records],
        "length": asdict(lengths),
        "table": asdict(table),
        "wall_seconds": {"this_run": wall, **ledger.phases},
    }
    write_text_atomic(folder / "report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(
        folder / "report.md",
        to_markdown(table)
        + _versions_markdown(records)
        + "".join(f"\n{line}\n" for line in length_lines),
    )
    phases = ", ".join(f"{k} {_duration(v)}" for k, v in ledger.phases.items())
    console.print(f"wall time: {_duration(wall)} this run; summed over runs: {phases}")
    console.print(f"report: {folder / 'report.md'} (also report.json)", highlight=False)


def _size(name: str) -> IterationSize:
    from codejury.demo.method import CPU_SIZE, GPU_SIZE

    if name not in ("auto", "cpu", "gpu"):
        raise typer.BadParameter(f"{name!r}: choose auto, cpu or gpu", param_hint="--size")
    if name == "auto":
        import torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
    return GPU_SIZE if name == "gpu" else CPU_SIZE


def _rich_table(table: MethodTable, title: str) -> Table:
    level = f"{100 * table.level:g}%"
    out = Table(
        title=title,
        caption=f"pass@1 in % [{level} bootstrap interval over problems]; average: the "
        "unweighted mean over languages",
    )
    out.add_column("")
    for language in (*table.languages, "average"):
        problems = table.problems.get(language, sum(table.problems.values()))
        out.add_column(f"{language} ({problems})", justify="right", no_wrap=True)
    for row in table.rows:
        out.add_row(
            row.label, *(cell(row.by_language[x]) for x in table.languages), cell(row.average)
        )
    for label, value in table.references.items():
        out.add_row(f"[dim]{label}[/]", *("" for _ in table.languages), f"{100 * value:.1f}")
    return out


def _rich_comparisons(table: MethodTable) -> Table:
    out = Table(
        title="paired differences (points; green/red: the interval excludes 0)",
        caption="paired bootstrap over problems of the per-problem difference",
    )
    out.add_column("")
    for language in (*table.languages, "average"):
        out.add_column(language, justify="right", no_wrap=True)
    for c in table.comparisons:
        cells = []
        for interval in (*(c.by_language[x] for x in table.languages), c.average):
            text = cell(interval, signed=True)
            if interval.excludes_zero:
                text = f"[{'green' if interval.low > 0 else 'red'}]{text}[/]"
            cells.append(text)
        out.add_row(c.label, *cells)
    return out


def _versions_markdown(records: list[IterationRecord]) -> str:
    lines = [
        "",
        "Reward-model versions (each rescored the same cached candidates):",
        "",
        "| iteration | version | parent | snapshot | MBXP held-out pass@1 | wall time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        held = "-" if r.heldout_pass_at_1 is None else f"{100 * r.heldout_pass_at_1:.1f}"
        lines.append(
            f"| {r.iteration} | {r.version} | {r.parent or '-'} | {r.snapshot_id} | {held} | "
            f"{_duration(r.seconds)} |"
        )
    return "\n".join(lines) + "\n"
