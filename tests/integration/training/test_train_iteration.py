"""A whole self-training iteration with tiny models, as the Kubernetes Job runs it
(``codejury train iteration`` in its own process, samples executed by a real Celery
worker in the sandbox), killed after PPO and resumed; and the inputs it must refuse."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from codejury.core.settings import Settings, load_settings, settings_env
from codejury.execution import languages as execution_languages
from codejury.execution.executor import Executor
from codejury.reranking.manifest import Manifest
from codejury.reranking.registry import ModelRegistry
from codejury.training.coldstart import mbxp_problems, mine_mutants
from codejury.training.errors import (
    CheckpointNotFoundError,
    NoPairsError,
    ToolchainUnavailableError,
)
from codejury.training.iteration import IterationConfig, IterationDeps, run_iteration
from codejury.training.mining import MINED_HARD_NEGATIVE
from codejury.training.records import Source
from codejury.training.store import TrainingStore
from codejury.training.workdir import iteration_dir, read_jsonl, read_result

pytest.importorskip("trl", reason="the iteration needs the train extra")

# Small enough for the default suite (about a minute with the worker's start-up).
SMALL: dict[str, dict[str, object]] = {
    "training": {
        "languages": "python",
        "problems_per_language": 6,
        "samples_per_problem": 3,
        "ppo_steps": 3,
        "ppo_batch_size": 4,
        "ppo_mini_batch_size": 2,
        "ppo_max_new_tokens": 12,
        "ppo_learning_rate": 1e-3,
        "epochs": 2,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "torch_threads": 1,
    },
    "generation": {"max_new_tokens": 24, "torch_threads": 1},
    "reranking": {"torch_threads": 1},
}


def _registry_with_stable(run_dir: Path, backbone: Path) -> ModelRegistry:
    registry = ModelRegistry(run_dir / "reranking" / "registry")
    registry.register(backbone, Manifest(version_id="rr-0", backbone="tiny-random-bert"))
    registry.mark_stable("rr-0")
    return registry


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codejury.generation.tiny import build_model_dir

    return build_model_dir(tmp_path_factory.mktemp("policy") / "tiny-lm", context=2048)


@pytest.fixture
def seeded_run(
    tmp_path: Path, data_dir: Path, tiny_backbone: Path, training_executor: Executor
) -> Path:
    """A run dir as cold start leaves it: rr-0 stable, MBXP Python canonical solutions and
    their failing mutants in the store (labelled in the sandbox)."""
    run_dir = tmp_path / "run"
    _registry_with_stable(run_dir, tiny_backbone)
    store = TrainingStore(run_dir / "training" / "data")
    report = mine_mutants(
        mbxp_problems(data_dir, "python", 30), training_executor, store, per_problem=2
    )
    assert report.kept > 20
    return run_dir


def _kill_strays(run_dir: Path) -> None:
    """Processes a killed run left behind (a Celery worker runs in its own session)."""
    marker = f"CODEJURY_RUN_DIR={run_dir}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)


def _iteration_command(
    run_dir: Path, data_dir: Path, policy: Path
) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    settings = _settings(run_dir, policy).model_copy(update={"data_dir": data_dir})
    env |= settings_env(settings) | {"HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "codejury", "train", "iteration", "--iteration", "1"]
    return command, env


@pytest.mark.slow  # ~41 s; the demo-install test runs a whole iteration in the default lane
def test_an_iteration_killed_after_ppo_resumes_without_retraining_and_registers(
    seeded_run: Path, data_dir: Path, policy_dir: Path
) -> None:
    run_dir = seeded_run
    it = iteration_dir(run_dir, 1)
    command, env = _iteration_command(run_dir, data_dir, policy_dir)
    log = run_dir / "first-attempt.log"
    with log.open("w") as sink:
        first = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not (it / "ppo" / "result.json").exists():
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "PPO did not finish in 300 s\n" + log.read_text()
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        _kill_strays(run_dir)
    reward_result = (it / "reward" / "result.json").read_text()
    reward_model = {p.name: p.stat().st_mtime_ns for p in (it / "reward" / "model").iterdir()}
    assert not (it / "register").exists()

    resumed = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    out = resumed.stdout
    # Reward-model training and PPO were not redone: skipped, their files untouched.
    assert "reward: already complete, skipped" in out and "ppo: already complete, skipped" in out
    assert "retrain: done" in out and "register: done" in out
    assert (it / "reward" / "result.json").read_text() == reward_result
    assert {p.name: p.stat().st_mtime_ns for p in (it / "reward" / "model").iterdir()} == (
        reward_model
    )
    assert not [p.name for p in it.iterdir() if p.name.startswith(".") or p.name == "ppo.work"]

    # PPO: metrics per step, and the exported policy is a loadable model that moved.
    ppo = read_result(it / "ppo")
    lines = read_jsonl(it / "ppo" / "metrics.jsonl")
    assert ppo["steps"] == len(lines) == 3
    assert {"reward_mean", "kl", "entropy", "clip_fraction", "value_loss"} <= lines[0].keys()
    _assert_weights_changed(policy_dir, it / "ppo" / "policy")

    # Sampling and execution: every sample ran in the sandbox, through the worker.
    samples = read_jsonl(it / "sample" / "samples.jsonl")
    results = {r["candidate_id"]: r["status"] for r in read_jsonl(it / "execute" / "results.jsonl")}
    assert len(samples) == 6 * 3 and set(results) == {s["candidate_id"] for s in samples}
    assert "SANDBOX_ERROR" not in results.values()

    # Mining: the stored rows carry the scores; the marked ones are the counted ones.
    mine = read_result(it / "mine")
    store = TrainingStore(run_dir / "training" / "data")
    generated = [r for r in store.rows() if r.source is Source.GENERATOR and r.iteration == 1]
    assert len(generated) == mine["rows_stored"] == mine["metrics"]["mining_samples"]
    assert all(r.score is not None for r in generated)
    marked = [r for r in generated if r.detail == MINED_HARD_NEGATIVE]
    assert len(marked) == mine["metrics"]["mining_hard_negatives"]
    assert all(not r.passed for r in marked)

    # The retrained model saw the mined rows (a newer snapshot) and is registered once.
    retrain = read_result(it / "retrain")
    assert retrain["snapshot_id"] != json.loads(reward_result)["snapshot_id"]
    registry = ModelRegistry(run_dir / "reranking" / "registry")
    version = read_result(it / "register")["version_id"]
    assert version in out
    assert [m.version_id for m in registry.versions() if m.iteration == 1] == [version]
    manifest = registry.get(version)
    assert (manifest.parent, manifest.data_snapshot_id) == ("rr-0", retrain["snapshot_id"])
    assert manifest.metrics["mining_hard_negatives"] == mine["metrics"]["mining_hard_negatives"]
    assert manifest.metrics["ppo_steps"] == 3
    assert 0.0 <= manifest.metrics["heldout_pass_at_1"] <= 1.0

    # A rerun of a finished iteration does nothing and registers nothing new.
    again = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "register: already complete, skipped" in again.stdout
    assert [m.version_id for m in registry.versions() if m.iteration == 1] == [version]


def _assert_weights_changed(before: Path, after: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    old = AutoModelForCausalLM.from_pretrained(before).state_dict()
    new = AutoModelForCausalLM.from_pretrained(after).state_dict()
    assert old.keys() == new.keys()
    assert any(not torch.equal(old[k], new[k]) for k in old)


# -- bad input: a clear error naming the problem, nothing half-written ----------------------


def _settings(run_dir: Path, policy: Path) -> Settings:
    return load_settings(
        {"run_dir": run_dir, **SMALL, "generation": {**SMALL["generation"], "model": str(policy)}}
    )


def _deps(settings: Settings, data_dir: Path) -> IterationDeps:
    def no_backend() -> contextlib.AbstractContextManager[object]:
        raise AssertionError("a refused iteration must not run anything")

    return IterationDeps(
        settings=settings,
        store=TrainingStore(settings.run_dir / "training" / "data"),
        registry=ModelRegistry(settings.run_dir / "reranking" / "registry"),
        backend=no_backend,  # type: ignore[arg-type]
        data_dir=data_dir,
    )


def _nothing_written(run_dir: Path, iteration: int) -> bool:
    it = iteration_dir(run_dir, iteration)
    return not it.exists() or not any(it.iterdir())


def test_an_empty_store_without_cold_start_is_refused(
    tmp_path: Path, data_dir: Path, tiny_backbone: Path, policy_dir: Path
) -> None:
    settings = _settings(tmp_path / "run", policy_dir)
    _registry_with_stable(settings.run_dir, tiny_backbone)
    config = IterationConfig.from_settings(settings, 1, cold_start_problems=0)
    with pytest.raises(
        NoPairsError, match=r"no training pairs .*`codejury train mutate`.*cold_start_problems"
    ):
        run_iteration(config, _deps(settings, data_dir))
    assert not (iteration_dir(settings.run_dir, 1) / "reward").exists()
    assert not TrainingStore(settings.run_dir / "training" / "data").parts()


def test_an_empty_store_is_cold_started_and_the_first_reward_model_trains(
    tmp_path: Path, data_dir: Path, tiny_backbone: Path, policy_dir: Path
) -> None:
    """A fresh run directory (issue 18: both attempts failed with "no training pairs"):
    the iteration seeds the store with MBXP canonical solutions and their failing mutants,
    then trains on them."""
    settings = _settings(tmp_path / "run", policy_dir)
    _registry_with_stable(settings.run_dir, tiny_backbone)
    config = IterationConfig.from_settings(
        settings, 1, cold_start_problems=12, cold_start_mutants=2, stop_after="reward"
    )
    steps: list[tuple[str, str]] = []
    result = run_iteration(config, _deps(settings, data_dir), on_step=lambda *e: steps.append(e))
    assert result.ran == ("coldstart", "reward")
    seeded = read_result(iteration_dir(settings.run_dir, 1) / "coldstart")
    assert seeded["seeded"] is True
    python = seeded["by_language"]["python"]
    assert python["problems"] == 12 and python["canonical_passed"] >= 10
    rows = TrainingStore(settings.run_dir / "training" / "data").rows()
    sources = {r.source for r in rows}
    assert sources == {Source.CANONICAL, Source.MUTATION}
    assert sum(r.source is Source.MUTATION for r in rows) == python["negatives"] > 0
    assert all(not r.passed for r in rows if r.source is Source.MUTATION)
    reward = read_result(iteration_dir(settings.run_dir, 1) / "reward")
    assert reward["metrics"]["train_pairs"] > 0
    # resumed: the store is not seeded twice
    again = run_iteration(config, _deps(settings, data_dir))
    assert again.skipped == ("coldstart", "reward") and again.ran == ()
    assert len(TrainingStore(settings.run_dir / "training" / "data").rows()) == len(rows)


def test_a_language_without_its_toolchain_is_refused(
    tmp_path: Path,
    data_dir: Path,
    tiny_backbone: Path,
    policy_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ruby = execution_languages.get_language("ruby")
    gone = dataclasses.replace(ruby, toolchain=("/nonexistent/bin/ruby",))
    monkeypatch.setitem(execution_languages._BY_ALIAS, "ruby", gone)
    settings = _settings(tmp_path / "run", policy_dir)
    _registry_with_stable(settings.run_dir, tiny_backbone)
    config = IterationConfig.from_settings(settings, 1, languages=("python", "ruby"))
    with pytest.raises(
        ToolchainUnavailableError, match=r"'ruby', which cannot run here .*missing /nonexistent"
    ):
        run_iteration(config, _deps(settings, data_dir))
    assert _nothing_written(settings.run_dir, 1)


def test_a_missing_policy_checkpoint_is_refused(
    tmp_path: Path, data_dir: Path, tiny_backbone: Path, policy_dir: Path
) -> None:
    settings = _settings(tmp_path / "run", policy_dir)
    _registry_with_stable(settings.run_dir, tiny_backbone)
    second = IterationConfig.from_settings(settings, 2)
    with pytest.raises(
        CheckpointNotFoundError, match=r"iterations/1/ppo/policy holds none: run iteration 1"
    ):
        run_iteration(second, _deps(settings, data_dir))
    explicit = IterationConfig.from_settings(settings, 1, policy=tmp_path / "no-such-model")
    with pytest.raises(CheckpointNotFoundError, match=r"--policy .*no-such-model: no transformers"):
        run_iteration(explicit, _deps(settings, data_dir))
    assert _nothing_written(settings.run_dir, 1) and _nothing_written(settings.run_dir, 2)
