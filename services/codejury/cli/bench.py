"""``codejury bench ...``: performance measured as ratios, side by side in one run."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from codejury.cli.app import bench_app, console, data_dir, settings_of
from codejury.core.settings import with_group

if TYPE_CHECKING:
    from codejury.execution.bench import LanguageReport
    from codejury.pipeline.bench import ObservabilityReport

# Languages with canonical solutions in MBXP or HumanEval-X (the sandbox benchmark's
# workload; MBXP's Go and Perl files have none, HumanEval-X has Go).
SANDBOX_LANGUAGES = (
    "python",
    "cpp",
    "java",
    "javascript",
    "typescript",
    "php",
    "ruby",
    "csharp",
    "go",
    "rust",
)


def _canonical_programs(root: Path, language: str, limit: int) -> tuple[str, list[str]]:
    """Up to ``limit`` assembled canonical programs: MBXP's, else HumanEval-X's."""
    from codejury.evaluation.datasets import Dataset, DatasetNotFoundError, find, load
    from codejury.execution.assembly import assemble

    for dataset in (Dataset.MBXP, Dataset.HUMANEVAL_X):
        try:
            problems = load(find(root, dataset, language))
        except DatasetNotFoundError:
            continue
        programs = [
            assemble(p.problem, p.canonical_solution) for p in problems if p.canonical_solution
        ]
        if programs:
            return dataset.value, programs[:limit]
    return "", []


@bench_app.command("sandbox")
def bench_sandbox(
    ctx: typer.Context,
    languages: Annotated[str, typer.Option(help="Comma-separated languages.")] = ",".join(
        SANDBOX_LANGUAGES
    ),
    per_language: Annotated[int, typer.Option(min=1, help="Programs per language.")] = 40,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs at once (the cores).")] = 2,
    data: Annotated[Path | None, typer.Option("--data-dir", help="Benchmark data folder.")] = None,
    output: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """Sandbox cost per language: runs/s and p50/p99 against plain subprocesses, and the
    C++ precompiled header's speed-up, on MBXP canonical solutions (all in one run)."""
    from codejury.execution.bench import bench_language, make_scratch, remove_scratch
    from codejury.execution.languages import get_language
    from codejury.execution.sandbox import Limits, SandboxConfig

    settings = settings_of(ctx)
    root = data_dir(settings, data)
    ex = settings.execution
    config = SandboxConfig(
        uid=ex.sandbox_uid,
        gid=ex.sandbox_gid,
        cgroup_parent=ex.cgroup_parent,
        warm_pool=concurrency,
    )
    limits = Limits(timeout_s=ex.timeout_s, memory_bytes=ex.memory_mb << 20)
    reports = []
    sources: dict[str, str] = {}
    scratch = make_scratch()
    try:
        with Progress(console=console) as progress:
            names = [get_language(n).name for n in languages.split(",") if n.strip()]
            task = progress.add_task("languages", total=len(names))
            for name in names:
                progress.update(task, description=name)
                source, programs = _canonical_programs(root, name, per_language)
                if not programs:
                    console.print(f"[yellow]{name}: no canonical solutions in MBXP or HumanEval-X")
                    progress.advance(task)
                    continue
                sources[name] = source
                reports.append(
                    bench_language(
                        name,
                        programs,
                        sandbox_config=config,
                        concurrency=concurrency,
                        limits=limits,
                        scratch=scratch,
                    )
                )
                progress.advance(task)
    finally:
        remove_scratch(scratch)
    table = Table(
        title=f"codejury bench sandbox: up to {per_language} canonical programs per language, "
        f"concurrency {concurrency}"
    )
    for column in (
        "language",
        "source",
        "mode",
        "passed",
        "runs/s",
        "p50 ms",
        "p99 ms",
        "median ratio",
    ):
        table.add_column(column, no_wrap=column in ("mode", "language"))
    rows = []
    for report in reports:
        for mode, result in report.modes.items():
            ratio = report.ratio(mode, "plain") if mode != "plain" else 1.0
            table.add_row(
                report.language,
                sources[report.language],
                mode,
                f"{result.passed}/{result.programs}",
                f"{result.per_second:.1f}",
                f"{result.percentile(0.5) * 1000:.0f}",
                f"{result.percentile(0.99) * 1000:.0f}",
                f"{ratio:.2f}x" if ratio else "",
            )
            rows.append(
                {
                    "language": report.language,
                    "source": sources[report.language],
                    "mode": mode,
                    "programs": result.programs,
                    "passed": result.passed,
                    "runs_per_s": round(result.per_second, 2),
                    "p50_ms": round(result.percentile(0.5) * 1000, 1),
                    "p99_ms": round(result.percentile(0.99) * 1000, 1),
                    "median_ratio_to_plain": round(ratio, 3) if ratio else None,
                }
            )
        _print_ratios(report)
    console.print(table)
    target = output or settings.run_dir / "bench" / "sandbox.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(rows, indent=2))
    console.print(f"report: {target}")


def _print_ratios(report: LanguageReport) -> None:
    """The side-by-side ratios a language's modes allow, one line each."""
    hardening = report.ratio("sandbox", "sandbox-unhardened")
    if hardening:
        console.print(
            f"{report.language}: seccomp filter and no nested user namespaces cost "
            f"{hardening:.3f}x per program (median, hardened / unhardened)",
            highlight=False,
        )
    if "sandbox-no-pch" in report.modes:
        speedup = report.ratio("sandbox-no-pch", "sandbox")
        console.print(f"C++ precompiled header: {speedup:.2f}x faster per program (median)")
    if "sandbox-batch" in report.modes:
        speedup = report.ratio("sandbox", "sandbox-batch")
        console.print(
            f"{report.language} compiled per batch: {speedup:.2f}x faster per program "
            "(median) than one compiler start per program"
        )
    if "sandbox-transpile-only" in report.modes:
        for mode in ("sandbox", "sandbox-batch"):
            cost = report.ratio(mode, "sandbox-transpile-only")
            if cost:
                console.print(
                    f"TypeScript type-checked by tsc ({mode}): {cost:.2f}x per program "
                    "(median) of esbuild's transpile-only",
                    highlight=False,
                )


@bench_app.command("training")
def bench_training(
    ctx: typer.Context,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="The bench's own run directory (store, registry, iterations); default: "
            "<run_dir>/bench/training, apart from the deployment's."
        ),
    ] = None,
    languages: Annotated[str, typer.Option(help="Comma-separated languages.")] = "python",
    iterations: Annotated[int, typer.Option(min=1, help="Self-training iterations.")] = 2,
    mutate_limit: Annotated[
        int, typer.Option(min=1, help="MBXP problems per language for the cold start.")
    ] = 60,
    eval_problems: Annotated[
        int, typer.Option(min=1, help="MultiPL-E HumanEval problems per language to score.")
    ] = 16,
    n: Annotated[int, typer.Option(min=1, help="Evaluation samples per problem.")] = 8,
    problems_per_language: Annotated[
        int, typer.Option(min=1, help="Training problems per language for PPO and mining.")
    ] = 16,
    samples_per_problem: Annotated[int, typer.Option(min=1, help="Mining samples.")] = 4,
    ppo_steps: Annotated[int, typer.Option(min=1, help="PPO steps per iteration.")] = 6,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens per sample.")] = 256,
    backbone: Annotated[
        str, typer.Option(help="Backbone of iteration 0: minilm, tiny or a model directory.")
    ] = "minilm",
    data: Annotated[Path | None, typer.Option("--data-dir", help="Benchmark data folder.")] = None,
) -> None:
    """Reranked pass@1 on a fixed MultiPL-E subset for iteration 0 (untrained), 1, 2, ...
    next to random-pick and oracle; reward-model and PPO throughput on this machine."""
    from codejury.cli.app import quiet_run
    from codejury.execution.factory import open_backend
    from codejury.reranking.model import apply_torch_threads
    from codejury.training.bench import TrainingBenchPlan, run_training_bench

    base = settings_of(ctx)
    root = data_dir(base, data)
    settings = with_group(base, "generation", max_new_tokens=max_new_tokens)
    settings = with_group(
        settings,
        "training",
        problems_per_language=problems_per_language,
        samples_per_problem=samples_per_problem,
        ppo_steps=ppo_steps,
    ).model_copy(update={"run_dir": run_dir or base.run_dir / "bench" / "training"})
    plan = TrainingBenchPlan(
        languages=tuple(x.strip() for x in languages.split(",") if x.strip()),
        iterations=iterations,
        mutate_limit=mutate_limit,
        eval_problems=eval_problems,
        n=n,
        backbone=backbone,
    )
    quiet_run(settings)
    apply_torch_threads(settings.training.torch_threads)
    with Progress(console=console) as progress:
        task = progress.add_task("bench training", total=None)
        result = run_training_bench(
            settings,
            plan,
            data_dir=root,
            backend=lambda: open_backend(settings, "worker"),
            report=lambda line: progress.console.print(line, highlight=False),
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    table = Table(
        title=f"codejury bench training: MultiPL-E HumanEval ({languages}), first "
        f"{eval_problems} problems, n={n}, {result.eval_candidates} candidates"
    )
    for column in ("iteration", "version", "reranked pass@1", "MBXP held-out pass@1"):
        table.add_column(column)
    for v in result.versions:
        held = "" if v.heldout_pass_at_1 is None else f"{v.heldout_pass_at_1:.3f}"
        table.add_row(str(v.iteration), v.version_id, f"{v.reranked_pass_at_1:.3f}", held)
    table.add_row("", "random pick", f"{result.random_pass_at_1:.3f}", "")
    table.add_row("", "oracle (pass@n)", f"{result.oracle_pass_at_1:.3f}", "")
    console.print(table)
    speed = Table(title="throughput on this machine")
    names = sorted({k for t in result.throughput for k in t} - {"iteration"})
    speed.add_column("metric")
    for t in result.throughput:
        speed.add_column(f"iteration {int(t['iteration'])}")
    for name in names:
        speed.add_row(name, *(f"{t.get(name, 0.0):.3g}" for t in result.throughput))
    console.print(speed)
    if result.unscored:
        console.print(f"{result.unscored} candidates too long for the reward model ranked last")
    out = settings.run_dir / "bench-training" / "result.json"
    out.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    console.print(f"written to {out}", highlight=False)


# -- `codejury bench pipeline`'s helpers (the command is the pipeline's: cli/pipeline.py)


@contextlib.contextmanager
def bench_root() -> Iterator[Path]:
    """A temporary folder for a pipeline benchmark's models and deployments."""
    with tempfile.TemporaryDirectory(prefix="codejury-bench-pipeline-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # the sandbox user reads the compile cache under it
        yield root


@dataclasses.dataclass(frozen=True)
class _ObservabilityTable:
    """A measured report, written as a table, a verdict and JSON."""

    report: ObservabilityReport
    requests: int
    n: int

    def write(self, target: Path) -> None:
        """The off/on table, the cost against the target, and the JSON report."""
        from codejury.pipeline.bench import COST_TARGET, OFF, ON

        table = Table(
            title=f"codejury bench pipeline --observability: {self.requests} requests per "
            f"round, n={self.n}"
        )
        for column in ("concurrency", "metrics+tracing", "rounds", "req/s", "p50 ms", "p99 ms"):
            table.add_column(column, justify="right")
        table.add_column("cost", justify="right")
        rows = []
        for run in self.report.runs:
            for mode in (OFF, ON):
                merged = run.of(mode)
                table.add_row(
                    str(run.concurrency),
                    mode,
                    str(sum(1 for r in run.rounds if r.mode == mode)),
                    f"{merged.per_second:.2f}",
                    f"{merged.percentile(0.5) * 1000:.0f}",
                    f"{merged.percentile(0.99) * 1000:.0f}",
                    f"{run.cost:+.1%}" if mode == ON else "",
                )
            rows.append(run.as_dict())
        console.print(table)
        worst = max((run.cost for run in self.report.runs), default=0.0)
        noise = max((run.spread for run in self.report.runs), default=0.0)
        verdict = "met" if worst <= COST_TARGET else "NOT met"
        console.print(
            f"cost at most {COST_TARGET:.0%} of throughput: {verdict} (worst "
            f"{worst:+.1%}; rounds of one mode differ by up to {noise:.1%}, so a cost below "
            f"that is not resolved: more --rounds or a quieter machine); "
            f"{self.report.spans} spans exported over OTLP, {self.report.scrapes} scrapes",
            highlight=False,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        report = {"runs": rows, "spans": self.report.spans, "scrapes": self.report.scrapes}
        target.write_text(json.dumps(report, indent=2))
        console.print(f"report: {target}")


def bench_observability(
    levels: list[int], *, requests: int, n: int, rounds: int, scrape_interval_s: float
) -> _ObservabilityTable:
    """Measure metrics and tracing on against off (``measure_observability``)."""
    from codejury.pipeline.bench import bench_settings, measure_observability

    with bench_root() as root, console.status("building tiny models") as status:
        report = measure_observability(
            bench_settings(root),
            levels,
            requests_per_round=requests,
            rounds=rounds,
            n=n,
            scrape_interval_s=scrape_interval_s,
            progress=status.update,
        )
    return _ObservabilityTable(report, requests, n)
