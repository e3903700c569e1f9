"""``codejury run``: a self-training run on this machine (the local runtime of ``control``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from codejury.cli.app import app, console, data_dir, quiet_run, settings_of, stop_signal
from codejury.core.settings import with_group

if TYPE_CHECKING:
    from codejury.control.status import RunStatus
    from codejury.runtime.meter import TrafficMeter


def _read_config(path: Path) -> tuple[str, Any]:
    """(run name, the spec mapping) of a YAML file: a SelfTrainingRun manifest (``metadata``
    and ``spec``) or the spec alone."""
    import yaml

    from codejury.core.errors import ConfigurationError

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"--config {path}: cannot read it as YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"--config {path}: expected a mapping, got {type(data).__name__}")
    if "spec" in data:
        name = str((data.get("metadata") or {}).get("name") or path.stem)
        return name, data["spec"]
    return path.stem, data


def _view(name: str, status: RunStatus, meter: TrafficMeter) -> Table:
    from codejury.control.status import ConditionType

    table = Table(title=f"codejury run {name}", show_header=False)
    table.add_column("")
    table.add_column("")
    table.add_row("phase", status.phase.value)
    table.add_row("iteration", f"{status.iteration} (attempt {status.training_attempt})")
    table.add_row("stable", status.stable_version or "(as before the run)")
    table.add_row("canary", status.canary_version or "-")
    table.add_row(
        "traffic", f"{100 - status.canary_weight}% stable / {status.canary_weight}% canary"
    )
    if status.step_started_at is not None:
        for label, version in (
            ("stable", status.stable_version),
            ("canary", status.canary_version),
        ):
            arm = meter.arm(version, status.step_started_at) if version else None
            if arm is not None:
                table.add_row(
                    f"{label} pass rate",
                    f"{arm.passed}/{arm.labelled} labelled ({arm.pass_rate:.1%}), "
                    f"{arm.errors} errors of {arm.requests}",
                )
    progressing = status.condition(ConditionType.PROGRESSING)
    if progressing is not None:
        table.add_row("now", progressing.message)
    if status.history:
        last = status.history[-1]
        table.add_row("last decision", f"{last.kind.value}: {last.reason}")
    return table


@app.command("run")
def run(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(help="SelfTrainingRun YAML (a manifest or its spec).")],
    tick: Annotated[float, typer.Option(min=0.1, help="Seconds between reconciles.")] = 2.0,
    timeout: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (the run resumes later).")
    ] = None,
    probe_n: Annotated[int, typer.Option(min=1, help="Samples per probe request.")] = 4,
    data: Annotated[Path | None, typer.Option("--data-dir", help="Benchmark data folder.")] = None,
) -> None:
    """Drive a self-training run here: training as a child process, the canary through the
    embedded reranking router, status in <run_dir>/runs/<name>/ (safe to stop and rerun)."""
    from codejury.control.errors import RunFailedError
    from codejury.control.spec import parse_spec
    from codejury.control.status import ConditionType, Phase
    from codejury.pipeline.embedded import EmbeddedPipeline
    from codejury.reranking.registry import ModelRegistry, registry_uri
    from codejury.runtime.jobs import LocalTrainingJobs, spec_languages
    from codejury.runtime.meter import TrafficMeter
    from codejury.runtime.runner import LocalRuntime, RunFiles
    from codejury.training.coldstart import mbxp_problems
    from codejury.training.pairs import is_heldout

    base = settings_of(ctx)
    name, raw = _read_config(config)
    spec = parse_spec(raw)
    settings = with_group(
        with_group(base, "generation", model=spec.generator),
        "pipeline",
        reranker_backbone=spec.reward_model_backbone,
    )
    t = settings.training
    probes = [
        p
        for language in spec_languages(spec, t.languages).split(",")
        for p in mbxp_problems(data_dir(settings, data), language, None)
        if is_heldout(p.problem.problem_id, fraction=t.heldout_fraction, seed=t.split_seed)
    ]
    files = RunFiles(settings.run_dir / "runs" / name)
    quiet_run(settings)
    stop = stop_signal()
    with EmbeddedPipeline(
        settings, progress=lambda m: console.print(m, highlight=False)
    ) as pipeline:
        registry = ModelRegistry.from_uri(registry_uri(pipeline.settings))
        meter = TrafficMeter().follow(pipeline.settings.bus)
        jobs = LocalTrainingJobs(pipeline.settings, spec, registry, files.logs)
        runtime = LocalRuntime(
            spec,
            files,
            jobs=jobs,
            registry=registry,
            meter=meter,
            deployment=pipeline,
            probes=probes,
            probe_n=probe_n,
        )

        def stop_on_signal() -> None:
            stop.wait()
            runtime.stop()

        threading.Thread(target=stop_on_signal, daemon=True).start()
        try:
            with Live(_view(name, runtime.status, meter), console=console) as live:
                final = runtime.run(
                    tick_s=tick,
                    timeout_s=timeout,
                    on_tick=lambda s: live.update(_view(name, s, meter)),
                )
        finally:
            jobs.stop()
            meter.stop()
    console.print(
        f"run {name}: {final.phase.value} at iteration {final.iteration}; status in {files.status}",
        highlight=False,
    )
    if final.phase is Phase.FAILED:
        # a failed run is a failed command: scripts and CI must not read it as success
        degraded = final.condition(ConditionType.DEGRADED)
        why = degraded.message if degraded is not None else f"see {files.status}"
        raise RunFailedError(f"run {name} failed: {why}")
