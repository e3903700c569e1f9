"""``codejury train ...``: the training data store, cold-start mutants, reward-model training.

codejury train mutate --languages python,cpp --per-problem 8 --limit 50
codejury train snapshot
codejury train stats [--snapshot latest]
codejury train reward-model --snapshot latest --base-version stable --epochs 1
codejury train feedback            # the consumer filling the store from codejury.feedback
codejury train ppo --output R/ppo --reward-version stable --steps 20
codejury train iteration --run-dir R --iteration 1   # the whole iteration, resumable
codejury train first-reranker      # cold start + reward model, stable (what up and demo serve)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from codejury.cli.app import app, console, data_dir, quiet_libraries, settings_of
from codejury.core.settings import Settings, with_group

if TYPE_CHECKING:
    from codejury.execution.factory import BackendMode

train_app = typer.Typer(
    help="Self-training: labelled-candidate store, cold-start mutants, reward-model training.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Benchmark data folder (env CODEJURY_DATA_DIR).")
]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@train_app.command("mutate")
def train_mutate(
    ctx: typer.Context,
    languages: Annotated[
        str, typer.Option(help="Comma-separated languages (python, cpp, java, ...).")
    ] = "python",
    per_problem: Annotated[int, typer.Option(min=1, help="Mutants per problem (K).")] = 8,
    limit: Annotated[
        int | None, typer.Option(min=1, help="First N MBXP problems per language; all if unset.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Mutation seed (env ..._TRAINING__SEED).")
    ] = None,
    iteration: Annotated[int, typer.Option(min=0, help="Iteration recorded on the rows.")] = 0,
    data: DataDirOption = None,
) -> None:
    """Cold start: mutate MBXP canonical solutions, run every mutant in the sandbox, store the
    failing ones as negatives and the canonical solutions as positives."""
    from codejury.training.coldstart import cold_start, mbxp_problems
    from codejury.training.mutation import language_name
    from codejury.training.store import TrainingStore

    settings = settings_of(ctx)
    root = data_dir(settings, data)
    names = [language_name(n) for n in languages.split(",") if n.strip()]
    problems = {name: mbxp_problems(root, name, limit) for name in names}
    for name in names:
        if not problems[name]:
            console.print(f"[yellow]{name}: no MBXP problem with a canonical solution")
    store = TrainingStore.from_settings(settings)
    with _progress() as progress:
        tasks = {n: progress.add_task(n, total=len(problems[n])) for n in names}
        reports = cold_start(
            settings,
            problems,
            store,
            per_problem=per_problem,
            seed=seed,
            iteration=iteration,
            progress=lambda lang, done: progress.update(tasks[lang], completed=done),
        )
    table = Table(title=f"codejury train mutate: K={per_problem} mutants per problem")
    for column in (
        "language",
        "problems",
        "canonical ok",
        "canonical failed",
        "mutants",
        "kept (failing)",
        "survived",
        "sandbox errors",
        "kept by status",
    ):
        table.add_column(column)
    for r in reports:
        table.add_row(
            r.language,
            str(r.problems),
            str(r.canonical_passed),
            str(r.canonical_failed),
            str(r.mutants),
            str(r.kept),
            str(r.survived),
            str(r.sandbox_errors),
            ", ".join(f"{k} {v}" for k, v in r.statuses.most_common()),
        )
    console.print(table)
    console.print(f"store: {store.root}")


@train_app.command("snapshot")
def train_snapshot(ctx: typer.Context) -> None:
    """Freeze every stored row into an immutable snapshot; prints its id."""
    from codejury.training.store import TrainingStore

    store = TrainingStore.from_settings(settings_of(ctx))
    snapshot = store.snapshot()
    console.print(
        f"snapshot {snapshot.snapshot_id}: {snapshot.info.rows} rows from "
        f"{snapshot.info.parts} parts in {store.root}",
        highlight=False,
    )


@train_app.command("stats")
def train_stats(
    ctx: typer.Context,
    snapshot: Annotated[
        str | None,
        typer.Option(help="A snapshot id or 'latest'; default: every row stored now."),
    ] = None,
) -> None:
    """Rows per language, label and source; problems; hard negatives."""
    from codejury.training.queries import stats
    from codejury.training.store import TrainingStore

    store = TrainingStore.from_settings(settings_of(ctx))
    if snapshot is None:
        rows, what = store.rows(), f"{len(store.parts())} parts"
    else:
        loaded = store.load(snapshot)
        rows, what = loaded.rows, f"snapshot {loaded.snapshot_id}"
    result = stats(rows)
    table = Table(title=f"training data: {result.rows} rows ({what}) in {store.root}")
    for column in ("language", "label", "source", "rows"):
        table.add_column(column)
    for (language, label, source), count in result.by_language_label_source.items():
        table.add_row(language, label, source, str(count))
    console.print(table)
    summary = Table()
    for column in ("language", "problems", "hard negatives"):
        summary.add_column(column)
    for language, problems in result.problems.items():
        summary.add_row(language, str(problems), str(result.hard_negatives.get(language, 0)))
    console.print(summary)
    console.print(
        "by status: " + ", ".join(f"{k} {v}" for k, v in result.by_status.items()),
        highlight=False,
    )


@train_app.command("reward-model")
def train_reward_model_command(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Option(help="Snapshot id or 'latest'.")] = "latest",
    base_version: Annotated[
        str, typer.Option(help="Reranker version to start from: an id, 'stable' or 'canary'.")
    ] = "stable",
    version: Annotated[
        str | None, typer.Option("--version", help="Id of the new version; default: generated.")
    ] = None,
    iteration: Annotated[
        int | None, typer.Option(min=0, help="Self-training iteration; default: parent's + 1.")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Epochs (env ..._TRAINING__EPOCHS).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Pairs per step.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="AdamW learning rate.")] = None,
    max_pairs_per_problem: Annotated[int | None, typer.Option(min=1)] = None,
    hard_negative_factor: Annotated[int | None, typer.Option(min=1)] = None,
    mark_canary: Annotated[
        bool, typer.Option("--mark-canary", help="Mark the new version canary.")
    ] = False,
    data: DataDirOption = None,
) -> None:
    """Train the reward model on a snapshot's pairs (TRL RewardTrainer), measure it on the
    held-out problems, and register it as a new reranker version."""
    import tempfile

    from codejury.reranking.model import apply_torch_threads
    from codejury.reranking.registry import ModelRegistry, registry_uri
    from codejury.training.catalog import mbxp_prompts
    from codejury.training.pairs import PairConfig, build_pairs
    from codejury.training.registration import new_version_id, register_reward_model
    from codejury.training.reward import RewardTrainingConfig, train_reward_model
    from codejury.training.store import TrainingStore

    settings = settings_of(ctx)
    t = settings.training
    store = TrainingStore.from_settings(settings)
    registry = ModelRegistry.from_uri(registry_uri(settings))
    parent = registry.resolve(base_version)
    base_dir = registry.model_dir(parent)
    loaded = store.load(snapshot)
    iteration = registry.get(parent).iteration + 1 if iteration is None else iteration
    new_id = version or new_version_id(iteration, loaded.snapshot_id)
    registry_ids = {m.version_id for m in registry.versions()}
    if new_id in registry_ids:
        from codejury.reranking.errors import VersionConflictError

        raise VersionConflictError(
            f"--version {new_id!r} is already registered: versions are immutable, pick a new id"
        )
    prompts = {}
    missing = {r.language for r in loaded.rows if not r.prompt}
    if missing:
        prompts = mbxp_prompts(data_dir(settings, data), missing)
    pair_config = PairConfig.from_settings(
        settings,
        max_pairs_per_problem=max_pairs_per_problem,
        hard_negative_factor=hard_negative_factor,
    )
    pairs = build_pairs(loaded.rows, pair_config, prompts=prompts)
    console.print(
        f"snapshot {loaded.snapshot_id}: {len(pairs.train)} training pairs "
        f"({pairs.hard_pairs} hard) from {pairs.train_problems} problems, "
        f"{len(pairs.heldout)} held-out pairs from {len(pairs.heldout_problems)} problems; "
        f"{pairs.length_balance_dropped} mutant pairs dropped to balance length",
        highlight=False,
    )
    config = RewardTrainingConfig.from_settings(
        settings, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate
    )
    quiet_libraries(settings)
    apply_torch_threads(t.torch_threads)
    with tempfile.TemporaryDirectory(prefix="codejury-rm-") as tmp, _progress() as progress:
        task = progress.add_task("training", total=None)
        result = train_reward_model(
            pairs,
            base_dir,
            Path(tmp) / "model",
            config,
            progress=lambda step, total: progress.update(task, completed=step, total=total),
        )
        manifest = register_reward_model(
            registry,
            result.model_dir,
            version_id=new_id,
            parent=parent,
            iteration=iteration,
            snapshot_id=loaded.snapshot_id,
            metrics=result.metrics,
        )
    table = Table(title=f"reward model {manifest.version_id} (parent {parent})")
    table.add_column("metric")
    table.add_column("before")
    table.add_column("after")
    for name in (
        "heldout_pairwise_accuracy",
        "heldout_pass_at_1",
        "train_pairwise_accuracy",
    ):
        table.add_row(name, f"{result.metrics[f'base_{name}']:.3f}", f"{result.metrics[name]:.3f}")
    for name in ("heldout_random_pass_at_1", "heldout_oracle_pass_at_1"):
        table.add_row(name, "", f"{result.metrics[name]:.3f}")
    for name in ("train_loss", "train_seconds", "train_pairs_per_s"):
        table.add_row(name, "", f"{result.metrics[name]:.3f}")
    console.print(table)
    if mark_canary:
        registry.mark_canary(manifest.version_id)
    console.print(
        f"registered {manifest.version_id} (iteration {iteration}, snapshot "
        f"{loaded.snapshot_id}){' as canary' if mark_canary else ''}",
        highlight=False,
    )


@train_app.command("first-reranker")
def train_first_reranker(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Train even when a trained version is stable.")
    ] = False,
    data: DataDirOption = None,
) -> None:
    """The reranker `codejury up` and `codejury demo` serve: when the registry's stable
    version is missing or an untrained head, seed an empty store with MBXP cold-start
    data (training.cold_start_*), train the reward model on it, register it as iteration
    0 and mark it stable. About a minute on 2 cores with the defaults."""
    from codejury.reranking.model import apply_torch_threads
    from codejury.reranking.registry import ModelRegistry, registry_uri
    from codejury.training.first_reranker import needs_training, train_first

    settings = settings_of(ctx)
    registry = ModelRegistry.from_uri(registry_uri(settings))
    if not force and not needs_training(registry):
        console.print(f"stable reranker {registry.channels().stable} is trained: nothing to do")
        return
    quiet_libraries(settings)
    apply_torch_threads(settings.training.torch_threads)
    with _progress() as progress:
        task = progress.add_task("training the first reranker", total=None, visible=False)

        def on_step(step: int, total: int | None) -> None:
            progress.update(task, completed=step, total=total, visible=True)

        train_first(
            settings,
            registry,
            data_dir(settings, data),
            backbone=settings.pipeline.reranker_backbone,
            report=lambda line: progress.console.print(line, highlight=False),
            progress=on_step,
        )


def ensure_first_reranker(settings: Settings) -> None:
    """Before `up` or `demo` serve: a trained stable reranker, trained here in a child
    process when there is none (``pipeline.first_reranker``), or a warning that says the
    untrained head is what will answer and how to change that."""
    import os
    import subprocess
    import sys

    from codejury.cli.app import err_console
    from codejury.core.errors import ConfigurationError
    from codejury.core.settings import settings_env
    from codejury.reranking.registry import ModelRegistry, registry_uri
    from codejury.training.first_reranker import needs_training

    registry = ModelRegistry.from_uri(registry_uri(settings))
    if not needs_training(registry):
        return
    untrained = (
        "the reranker will be an untrained score head (its scores are noise; picks are near-random)"
    )
    if settings.pipeline.first_reranker == "untrained":
        err_console.print(
            f"warning: {untrained}: pipeline.first_reranker is 'untrained'; unset it, or run "
            "`codejury train first-reranker`",
            highlight=False,
        )
        return
    try:
        data = data_dir(settings)
    except ConfigurationError as exc:
        err_console.print(
            f"warning: {untrained}: no MBXP data to train one ({exc}); set "
            "CODEJURY_DATA_DIR, then run `codejury train first-reranker`",
            highlight=False,
        )
        return
    console.print(
        "no trained reranker in the registry: training one on MBXP cold-start data first "
        "(once; `codejury train first-reranker`)",
        highlight=False,
    )
    # as quiet_run: the child's progress lines, not its log
    level = "WARNING" if settings.log_level == "INFO" else settings.log_level
    child = settings.model_copy(update={"data_dir": data, "log_level": level})
    env = {**os.environ, **settings_env(child)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "codejury", "train", "first-reranker"],
            env=env,
            check=False,
            timeout=settings.pipeline.first_reranker_timeout_s,
        )
    except subprocess.TimeoutExpired:
        failed = (
            f"it took over {settings.pipeline.first_reranker_timeout_s:g}s (a bigger cold "
            "start needs more: raise CODEJURY_PIPELINE__FIRST_RERANKER_TIMEOUT_S)"
        )
    else:
        failed = "" if done.returncode == 0 else f"it exited {done.returncode} (see above)"
    if failed:
        err_console.print(
            f"warning: {untrained}: training the first reranker failed: {failed}; fix it "
            "and run `codejury train first-reranker`",
            highlight=False,
        )


@train_app.command("feedback")
def train_feedback(
    ctx: typer.Context,
    max_records: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many events (for scripts).")
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Stop after this many idle seconds (for scripts).")
    ] = None,
) -> None:
    """Consume codejury.feedback into the training store until stopped (SIGTERM/SIGINT)."""
    from codejury.reranking.registry import ModelRegistry, registry_uri
    from codejury.training.feedback import feedback_consumer, registry_iterations
    from codejury.training.store import TrainingStore

    settings = settings_of(ctx)
    store = TrainingStore.from_settings(settings)
    registry = ModelRegistry.from_uri(registry_uri(settings))
    consumer, buffer = feedback_consumer(
        settings, store, iteration_of=registry_iterations(lambda v: registry.get(v).iteration)
    )
    consumer.install_signal_handlers()
    stats = consumer.run(max_records=max_records, idle_timeout_s=idle_timeout)
    console.print(
        f"feedback: {stats.handled} events, {buffer.rows_written} rows in "
        f"{buffer.parts_written} parts ({store.root}), {stats.dead_lettered} dead-lettered",
        highlight=False,
    )


RunDirOption = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="Run directory (overrides `codejury --run-dir` / CODEJURY_RUN_DIR): where the "
        "iterations, the store and the registry live.",
    ),
]
ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="worker: start a Celery worker for the execute step; celery: the workers already "
        "serving celery.broker_url (a cluster); in-process: this process's sandbox.",
    ),
]


def _with_run_dir(ctx: typer.Context, run_dir: Path | None) -> Settings:
    settings = settings_of(ctx)
    return settings if run_dir is None else settings.model_copy(update={"run_dir": run_dir})


def _executor_mode(value: str) -> BackendMode:
    if value not in ("worker", "celery", "in-process"):
        raise typer.BadParameter(
            f"{value!r}: use worker, celery or in-process", param_hint="--executor"
        )
    return value  # type: ignore[return-value]


@train_app.command("iteration")
def train_iteration(
    ctx: typer.Context,
    iteration: Annotated[int, typer.Option(min=1, help="The iteration to run (from 1).")],
    run_dir: RunDirOption = None,
    base_version: Annotated[
        str, typer.Option(help="Reranker version the reward models start from.")
    ] = "stable",
    policy: Annotated[
        Path | None,
        typer.Option(
            help="Generator to align (a model directory); default: the previous iteration's "
            "aligned one, or generation.model for iteration 1."
        ),
    ] = None,
    languages: Annotated[
        str | None, typer.Option(help="Comma-separated MBXP languages (training.languages).")
    ] = None,
    problems_per_language: Annotated[int | None, typer.Option(min=1)] = None,
    samples_per_problem: Annotated[int | None, typer.Option(min=1)] = None,
    ppo_steps: Annotated[int | None, typer.Option(min=1)] = None,
    executor: ExecutorOption = "worker",
    mark_canary: Annotated[
        bool, typer.Option("--mark-canary", help="Mark the new version canary.")
    ] = False,
    stop_after: Annotated[
        str | None, typer.Option(help="Stop once this step is complete (reward, ppo, ...).")
    ] = None,
    data: DataDirOption = None,
) -> None:
    """One self-training iteration: reward model -> PPO -> sample -> execute -> mine ->
    retrain -> register. Resumable: a rerun skips the steps already complete."""
    from codejury.execution.factory import open_backend
    from codejury.reranking.model import apply_torch_threads
    from codejury.reranking.registry import ModelRegistry, registry_uri
    from codejury.training.iteration import (
        IterationConfig,
        IterationDeps,
        run_iteration,
    )
    from codejury.training.store import TrainingStore

    settings = _with_run_dir(ctx, run_dir)
    mode = _executor_mode(executor)
    sizes = {
        "languages": languages,
        "problems_per_language": problems_per_language,
        "samples_per_problem": samples_per_problem,
        "ppo_steps": ppo_steps,
    }
    settings = with_group(settings, "training", **{k: v for k, v in sizes.items() if v is not None})
    config = IterationConfig.from_settings(
        settings,
        iteration,
        base_version=base_version,
        policy=policy,
        mark_canary=mark_canary,
        stop_after=stop_after,
    )
    deps = IterationDeps(
        settings=settings,
        store=TrainingStore.from_settings(settings),
        registry=ModelRegistry.from_uri(registry_uri(settings)),
        backend=lambda: open_backend(settings, mode),
        data_dir=data_dir(settings, data),
    )
    quiet_libraries(settings)
    apply_torch_threads(settings.training.torch_threads)
    with _progress() as progress:
        task = progress.add_task(f"iteration {iteration}", total=None)

        def on_step(step: str, what: str) -> None:
            if what == "start":
                progress.update(task, description=f"iteration {iteration}: {step}", completed=0)
            elif what == "skip":
                progress.console.print(f"{step}: already complete, skipped", highlight=False)
            else:
                progress.console.print(f"{step}: done", highlight=False)

        result = run_iteration(
            config,
            deps,
            on_step=on_step,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    table = Table(title=f"iteration {iteration} ({result.directory})")
    table.add_column("metric")
    table.add_column("value")
    for name, value in sorted(result.metrics.items()):
        table.add_row(name, f"{value:.4g}")
    console.print(table)
    if result.version_id:
        console.print(
            f"registered {result.version_id}{' as canary' if mark_canary else ''}",
            highlight=False,
        )
    else:
        console.print(f"stopped after {stop_after}; rerun without --stop-after to finish")


@train_app.command("ppo")
def train_ppo_command(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option(help="PPO run folder (metrics.jsonl, checkpoints/); resumes if any.")
    ],
    reward_version: Annotated[
        str, typer.Option(help="Reranker version whose score is the reward.")
    ] = "stable",
    policy: Annotated[
        Path | None,
        typer.Option(help="Generator to align (a model directory); default: generation.model."),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(help="Also write the aligned generator here as a model directory."),
    ] = None,
    languages: Annotated[str | None, typer.Option(help="Comma-separated MBXP languages.")] = None,
    problems_per_language: Annotated[int | None, typer.Option(min=1)] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="PPO steps.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    mini_batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    learning_rate: Annotated[float | None, typer.Option()] = None,
    max_new_tokens: Annotated[int | None, typer.Option(min=1)] = None,
    use_lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters only.")] = False,
    data: DataDirOption = None,
) -> None:
    """PPO of the generator against a registered reward model, on MBXP training prompts."""
    from transformers import AutoTokenizer

    from codejury.reranking.factory import load_version
    from codejury.reranking.model import apply_torch_threads
    from codejury.reranking.registry import ModelRegistry, registry_uri
    from codejury.training.iteration import IterationConfig, training_problems
    from codejury.training.policy import (
        base_policy_dir,
        check_policy_dir,
        export_policy,
        policy_prompts,
        reward_function,
    )
    from codejury.training.ppo import train_ppo

    settings = settings_of(ctx)
    sizes = {"languages": languages, "problems_per_language": problems_per_language}
    settings = with_group(settings, "training", **{k: v for k, v in sizes.items() if v is not None})
    config = IterationConfig.from_settings(settings, 1)
    changes: dict[str, Any] = {
        "steps": steps,
        "batch_size": batch_size,
        "mini_batch_size": mini_batch_size,
        "learning_rate": learning_rate,
        "max_new_tokens": max_new_tokens,
        "use_lora": use_lora or None,
    }
    ppo = dataclasses.replace(config.ppo, **{k: v for k, v in changes.items() if v is not None})
    registry = ModelRegistry.from_uri(registry_uri(settings))
    version = registry.resolve(reward_version)
    policy_dir = check_policy_dir(policy, field="--policy") if policy else base_policy_dir(settings)
    problems = training_problems(data_dir(settings, data), config, config.pairs)
    quiet_libraries(settings)
    apply_torch_threads(settings.training.torch_threads)
    scorer = load_version(settings, registry, version)
    prompts = policy_prompts(AutoTokenizer.from_pretrained(policy_dir), problems, settings)
    with _progress() as progress:
        task = progress.add_task("ppo", total=ppo.steps)
        result = train_ppo(
            policy_dir,
            output,
            [p.text for p in prompts],
            reward_function(prompts, scorer),
            ppo,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    table = Table(title=f"PPO against {version}: {output}")
    for column in ("step", "reward_mean", "kl", "kl_coef", "entropy", "clip_fraction"):
        table.add_column(column)
    for record in result.metrics:
        table.add_row(
            str(int(record["step"])),
            *(
                f"{record[k]:.4f}"
                for k in ("reward_mean", "kl", "kl_coef", "entropy", "clip_fraction")
            ),
        )
    console.print(table)
    if export is not None:
        export_policy(result.checkpoint, policy_dir, export)
        console.print(f"aligned generator written to {export}", highlight=False)
