"""``codejury bench ...``: performance measured as ratios, side by side in one run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from codejury.cli.app import bench_app, console, data_dir, settings_of

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
        table.add_column(column)
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
        if "sandbox-no-pch" in report.modes:
            speedup = report.ratio("sandbox-no-pch", "sandbox")
            console.print(f"C++ precompiled header: {speedup:.2f}x faster per program (median)")
    console.print(table)
    target = output or settings.run_dir / "bench" / "sandbox.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(rows, indent=2))
    console.print(f"report: {target}")
