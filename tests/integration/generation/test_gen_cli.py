"""``codejury serve generation`` as an operator runs it: a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc


def _env(**settings: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    return {**base, "HF_HUB_OFFLINE": "1", **settings}


def _serve(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "codejury", "--run-dir", str(tmp_path / "run")),
            *("serve", "generation", "--port", "0"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _ready_port(process: subprocess.Popen[str], timeout_s: float = 120) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("READY port="):
            return int(line.split("=", 1)[1])
        if not line and process.poll() is not None:
            break
    raise AssertionError(
        f"no READY line; stderr: {process.stderr.read() if process.stderr else ''}"
    )


def test_serve_generation_answers_and_stops_on_sigterm(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    env = _env(
        CODEJURY_GENERATION__MODEL=str(tiny_model_dir),
        CODEJURY_GENERATION__PROMPT_STYLE="completion",
    )
    with _serve(tmp_path, env) as process:
        try:
            port = _ready_port(process)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                response = services_pb2_grpc.GenerationStub(channel).Generate(
                    services_pb2.GenerateRequest(
                        problems=[domain_pb2.Problem(language="python", prompt="def f():\n")],
                        n=2,
                        sampling=domain_pb2.SamplingParams(max_new_tokens=8),
                    ),
                    timeout=60,
                )
            assert len(response.candidates) == 2
            assert response.candidates[0].model_name == "tiny-chat-lm"
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
        code = process.returncode
    assert code == 0


def test_a_model_that_does_not_load_stops_start_up_with_the_reason(tmp_path: Path) -> None:
    with _serve(tmp_path, _env(CODEJURY_GENERATION__MODEL=str(tmp_path / "nowhere.gguf"))) as p:
        _, stderr = p.communicate(timeout=120)
    assert p.returncode == 2
    assert "GGUF file" in stderr and "nowhere.gguf does not exist" in stderr
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with _serve(tmp_path, _env(CODEJURY_GENERATION__MODEL=str(broken))) as p:
        _, stderr = p.communicate(timeout=120)
    assert p.returncode == 2
    assert "did not load" in stderr and "broken-model" in stderr
