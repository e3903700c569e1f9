"""The reranking commands as a user runs them: subprocesses."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc
from codejury.reranking.registry import ModelRegistry, manifest_in_model_dir

STABLE_V, CANARY_V = "tiny-stable", "tiny-canary"  # the registry the conftest builds


def _env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    return {**base, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def _codejury(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codejury", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )


def test_unknown_version_is_one_clear_line_and_exit_1(
    tiny_registry: ModelRegistry, tmp_path: Path
) -> None:
    result = _codejury(
        "--run-dir", str(tmp_path), "serve", "reranking-model", "--version", "tiny-nope",
        "--registry", str(tiny_registry.root),
    )  # fmt: skip
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: version 'tiny-nope' is not registered"), result.stderr
    assert "tiny-stable" in lines[-1]  # it lists what is known


def test_list_shows_versions_lineage_and_channels(tiny_registry: ModelRegistry) -> None:
    result = _codejury("reranker", "list", "--registry", str(tiny_registry.root))
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "stable" in rows[STABLE_V] and "canary" in rows[CANARY_V]
    assert STABLE_V in rows[CANARY_V].split("│")[3]  # the canary's parent


@pytest.mark.slow  # ~9 s; serve generation's SIGTERM test and the pipeline's keep the pattern
def test_serve_reranking_in_process_answers_rank_and_stops_on_sigterm(
    tiny_registry: ModelRegistry, tmp_path: Path
) -> None:
    log = (tmp_path / "stderr.log").open("w")
    with log, subprocess.Popen(
        [
            sys.executable, "-m", "codejury", "--run-dir", str(tmp_path), "serve", "reranking",
            "--in-process", "--port", "0", "--canary-weight", "0", "--registry",
            str(tiny_registry.root),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=_env(),
    ) as process:  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=lambda: [lines.put(line) for line in process.stdout or []], daemon=True
        )
        reader.start()
        try:
            port = None
            while port is None:
                line = lines.get(timeout=120)
                if line.startswith("READY port="):
                    port = int(line.split("=")[1])
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                response = services_pb2_grpc.RerankingStub(channel).Rank(
                    services_pb2.RankRequest(
                        problem=domain_pb2.Problem(problem_id="p", prompt="def f(x):\n"),
                        candidates=[
                            domain_pb2.Candidate(candidate_id="a", completion="    return x\n"),
                            domain_pb2.Candidate(candidate_id="b", completion="    return -x\n"),
                        ],
                    ),
                    timeout=60,
                )
            assert response.served_version == STABLE_V  # canary weight 0: all to stable
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0, (tmp_path / "stderr.log").read_text()[-2000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(timeout=10)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert f"served: stable/{STABLE_V}: 1" in "".join(rest)


def test_a_mounted_model_directory_is_served_under_the_version_it_records(
    tiny_registry: ModelRegistry, tmp_path: Path
) -> None:
    """What KServe runs: only the version's model/ is mounted (at /mnt/models), so the
    directory itself must say which version it is (the registry writes codejury-version)
    and what it is: the stable version here is an untrained head, which is said, never
    served silently (the registry copies the manifest in)."""
    mounted = tmp_path / "mnt-models"
    import shutil

    shutil.copytree(tiny_registry.model_dir(STABLE_V), mounted)
    trained = manifest_in_model_dir(tiny_registry.model_dir(CANARY_V))
    assert trained is not None and trained.parent == STABLE_V and not trained.untrained
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr, subprocess.Popen(
        [
            sys.executable, "-m", "codejury", "--run-dir", str(tmp_path), "serve",
            "reranking-model", "--model-dir", str(mounted), "--http-port", "0",
            "--grpc-port", "0",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=_env(),
    ) as process:  # fmt: skip
        try:
            ready = next(line for line in process.stdout or [] if line.startswith("READY"))
            assert ready.split()[1] == f"version={STABLE_V}"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    said = " ".join(errors.read_text().split())
    assert f"version {STABLE_V} is an untrained score head" in said
    assert "codejury train first-reranker" in said
    (mounted / "codejury-version").unlink()
    refused = _codejury(
        "--run-dir", str(tmp_path), "serve", "reranking-model", "--model-dir", str(mounted)
    )
    assert refused.returncode == 2
    assert "does not record its version" in refused.stderr and "--version" in refused.stderr
