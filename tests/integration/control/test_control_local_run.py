"""``codejury run`` on one machine with tiny models: a continuous run trains iteration 1
(a ``codejury train iteration`` child process), rolls the new reranker out as a canary
through the embedded pipeline (probe traffic labels both arms), promotes it step by
step, goes Idle, and its schedule trigger starts iteration 2; SIGTERM stops it cleanly
and a restart resumes from the saved status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from codejury.core.settings import load_settings, settings_env
from codejury.reranking.registry import ModelRegistry

pytest.importorskip("trl", reason="the run trains: it needs the train extra")

SETTINGS = {
    "generation": {"max_new_tokens": 24, "grpc_port": 0, "torch_threads": 1},
    "execution": {"grpc_port": 0, "warm_sandboxes": 1, "timeout_s": 5},
    "reranking": {
        "grpc_port": 0,
        "model_http_port": 0,
        "model_grpc_port": 0,
        "torch_threads": 1,
    },
    "pipeline": {"grpc_port": 0, "max_in_flight": 32},
    "training": {
        "problems_per_language": 4,
        "ppo_max_new_tokens": 12,
        "epochs": 1,
        "torch_threads": 1,
        # a fresh run directory: the first iteration seeds its own store (issue 18 item 9)
        "cold_start_problems": 30,
        "cold_start_mutants": 2,
    },
}

SPEC = {
    "apiVersion": "codejury.io/v1alpha1",
    "kind": "SelfTrainingRun",
    "metadata": {"name": "tiny"},
    "spec": {
        "generator": "<tiny model>",
        "rewardModelBackbone": "tiny",
        "datasets": ["mbxp/python"],
        "iterations": "continuous",
        "samplesPerProblem": 2,
        "ppo": {"steps": 2, "batchSize": 4, "miniBatchSize": 2, "maxNewTokens": 12},
        # Tiny random models pass nothing, so both arms measure 0 of n: a wide margin
        # and a low confidence let "no worse" be shown on a few labelled requests.
        "canary": {
            "steps": [10, 50, 100],
            "minSamples": 3,
            "margin": 0.5,
            "confidence": 0.6,
            "maxErrorRate": 0.5,
            "maxP99LatencyMilliseconds": 120000,
            "probeRate": 4.0,
        },
        "trigger": {"scheduleIntervalSeconds": 1},
        "maxTrainingRetries": 1,
    },
}


def _env(run_dir: Path, data_dir: Path, **training: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    settings = load_settings(
        {
            "run_dir": run_dir,
            "data_dir": data_dir,
            **SETTINGS,
            "training": {**SETTINGS["training"], **training},
        }
    )
    return env | settings_env(settings) | {"HF_HUB_OFFLINE": "1", "COLUMNS": "160"}


def _status(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _wait(
    process: subprocess.Popen[bytes], path: Path, log: Path, ok: Any, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = _status(path)
        if ok(status):
            return status
        assert process.poll() is None, f"codejury run exited:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"status {status}\n{log.read_text()[-4000:]}"
        time.sleep(0.5)


@pytest.mark.slow  # ~190 s; the demo-install test runs an iteration and a canary
@pytest.mark.timeout(900)
def test_a_continuous_run_trains_canaries_promotes_and_triggers_the_next_iteration(
    tmp_path: Path, data_dir: Path
) -> None:
    """From an empty run directory: the store is seeded by the first iteration itself."""
    from codejury.generation.tiny import build_model_dir

    run_dir = tmp_path / "run"
    spec = json.loads(json.dumps(SPEC))
    spec["spec"]["generator"] = str(build_model_dir(tmp_path / "tiny-lm", context=2048))
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps(spec))  # JSON is YAML
    files = run_dir / "runs" / "tiny"
    env = _env(run_dir, data_dir)
    command = [sys.executable, "-m", "codejury", "run", "--config", str(config), "--tick", "0.5"]
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        idle = _wait(process, files / "status.json", log, lambda s: s.get("phase") == "Idle", 600)
        second = _wait(
            process,
            files / "status.json",
            log,
            lambda s: s.get("phase") == "Training" and s.get("iteration") == 2,
            120,
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log.read_text()[-4000:]
    finally:
        if process.poll() is None:
            process.kill()

    # Iteration 1: trained, rolled out 10% -> 50% -> promoted, in that order.
    events = [json.loads(x) for x in (files / "events.jsonl").read_text().splitlines()]
    kinds = [(e["kind"], e.get("weight")) for e in events if e["kind"] != "EmitEvent"]
    version = idle["stableVersion"]
    assert version and version.startswith("rm-i1-")
    assert kinds[:5] == [
        ("StartTrainingJob", None),
        ("RecordMetrics", None),
        ("SetCanary", 10),
        ("SetCanary", 50),
        ("Promote", None),
    ]
    assert [e["version"] for e in events if e["kind"] in ("SetCanary", "Promote")][:3] == [
        version
    ] * 3
    assert idle["canaryVersion"] is None and idle["canaryWeight"] == 0
    assert idle["iterations"][0]["outcome"] == "Promoted"
    registry = ModelRegistry(run_dir / "reranking" / "registry")
    assert registry.channels().stable == version and registry.channels().canary is None
    assert registry.get(version).iteration == 1

    # The schedule trigger started iteration 2, whose job was started once.
    assert second["iteration"] == 2 and second["trainingAttempt"] == 1
    starts = [e for e in events if e["kind"] == "StartTrainingJob"]
    assert [(e["iteration"], e["attempt"]) for e in starts][:2] == [(1, 1), (2, 1)]
    fired = [e for e in events if e["kind"] == "EmitEvent" and e["reason"] == "TrainingStarted"]
    assert fired[-1]["message"].startswith("iteration 2 training started: ")
    assert "since the last iteration ended (interval 1 s)" in fired[-1]["message"]
    promoted = next(e for e in events if e["kind"] == "EmitEvent" and e["reason"] == "Promoted")
    assert "canary pass rate" in promoted["message"] and ">= 0.6" in promoted["message"]

    # Restarted, it resumes from status.json: iteration 2's attempt is started again
    # (the iteration resumes from its steps), nothing of iteration 1 is redone.
    before = len(events)
    again = subprocess.run(
        [*command, "--timeout", "10"], env=env, capture_output=True, timeout=600, check=False
    )
    assert again.returncode == 0, again.stdout.decode()[-4000:]
    later = [json.loads(x) for x in (files / "events.jsonl").read_text().splitlines()][before:]
    acted = [e for e in later if e["kind"] != "EmitEvent"]
    # The first act is starting iteration 2's attempt again; the resumed job may even finish
    # within the window and start its canary: never anything of iteration 1.
    assert (acted[0]["kind"], acted[0]["iteration"], acted[0]["attempt"]) == (
        "StartTrainingJob",
        2,
        1,
    )
    assert all(e.get("iteration", 2) == 2 for e in acted)
    assert all(e["version"].startswith("rm-i2-") for e in acted if "version" in e)
    assert _status(files / "status.json")["iteration"] == 2
    assert registry.channels().stable == version


@pytest.mark.slow  # ~55 s (the timeout is its budget in bin/test's slow lane)
@pytest.mark.timeout(150)
def test_a_run_that_fails_exits_non_zero_with_the_reason(tmp_path: Path, data_dir: Path) -> None:
    """An empty store with cold start turned off has no training pairs: the only attempt
    fails, the run ends Failed, and ``codejury run`` says why and exits 1 (it exited 0, as
    if the run had worked)."""
    from codejury.generation.tiny import build_model_dir

    spec = json.loads(json.dumps(SPEC))
    spec["spec"] |= {"iterations": 1, "maxTrainingRetries": 0}
    del spec["spec"]["trigger"]
    spec["spec"]["generator"] = str(build_model_dir(tmp_path / "tiny-lm", context=2048))
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, "-m", "codejury", "run", "--config", str(config), "--tick", "0.5"],
        env=_env(tmp_path / "run", data_dir, cold_start_problems=0),
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "run tiny: Failed" in result.stdout
    assert "error: run tiny failed: " in result.stderr
    assert _status(tmp_path / "run" / "runs" / "tiny" / "status.json")["phase"] == "Failed"
