"""The codejury command as a user runs it: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _codejury(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return _python("-m", "codejury", *args, env=env, cwd=cwd, stdin=stdin)


def _python(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    result = _codejury("--help")
    assert result.returncode == 0
    for command in (
        "demo",
        "smoke",
        "eval",
        "up",
        "solve",
        "broker",
        "worker",
        "settings",
        "protos",
    ):
        assert command in result.stdout


def test_unknown_setting_is_one_clear_line_and_exit_2() -> None:
    result = _codejury("settings", env={"CODEJURY_BUS__BOOTSTRAP": "x:1"})
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "CODEJURY_BUS__BOOTSTRAP" in lines[0] and "codejury settings" in lines[0]


def test_invalid_value_names_the_setting() -> None:
    result = _codejury("settings", env={"CODEJURY_LOG_LEVEL": "LOUD"})
    assert result.returncode == 2
    assert "CODEJURY_LOG_LEVEL" in result.stderr and "LOUD" in result.stderr


def test_settings_shows_environment_names_and_values() -> None:
    result = _codejury("settings", "--json", env={"CODEJURY_BUS__CLIENT_ID": "from-env"})
    assert result.returncode == 0
    assert '"client_id": "from-env"' in result.stdout


def test_secrets_never_show_in_settings_but_reach_child_processes() -> None:
    env = {
        "CODEJURY_PIPELINE__AUTH_TOKENS": "tok-4f2a9",
        "CODEJURY_PIPELINE__TOKEN": "tok-77b1c",
        "CODEJURY_GENERATION__OPENAI_API_KEY": "sk-93d0e",
    }
    for args in (("settings",), ("settings", "--json")):
        result = _codejury(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert "CODEJURY_PIPELINE__AUTH_TOKENS" in result.stdout or "auth_tokens" in result.stdout
        for secret in env.values():
            assert secret not in result.stdout + result.stderr
    # what codejury up hands its service processes is the value, not the mask
    child = _python(
        "-c",
        "from codejury.core.settings import load_settings, settings_env;"
        "print(settings_env(load_settings())['CODEJURY_PIPELINE__AUTH_TOKENS'])",
        env=env,
    )
    assert child.stdout.strip() == "tok-4f2a9", child.stderr


def test_protos_check_passes_on_committed_stubs() -> None:
    result = _codejury("protos", "--check")
    assert result.returncode == 0, result.stderr


# Slow lane (12 s): the pipeline tests cover the same plumbing with the real services.
@pytest.mark.slow
def test_smoke_runs_the_plumbing_end_to_end(tmp_path: Path) -> None:
    result = _codejury(
        "--run-dir", str(tmp_path / "run"), "smoke", "--requests", "3", env={"COLUMNS": "250"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dropped 1 duplicate(s), dead-lettered 2" in result.stdout
    assert result.stdout.count("smoke-") >= 3
    assert "problem.language is empty" in result.stdout
    assert "EnvelopeError" in result.stdout


def _one_clear_error(result: subprocess.CompletedProcess[str]) -> str:
    """The stderr of a refused command: no traceback, and the error on its own line."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("eval", "--nope"), "No such option: --nope"),
        (("nosuchcmd",), "No such command 'nosuchcmd'"),
        (("reranker", "mark", "nosuch"), "Invalid value"),
        (("eval", "--n", "zero"), "Invalid value for '--n'"),
        (("exec",), "give a FILE and --language"),
    ],
)
def test_usage_errors_print_the_usage_line_not_a_traceback(
    args: tuple[str, ...], expected: str
) -> None:
    result = _codejury(*args)
    assert result.returncode == 2
    stderr = _one_clear_error(result)
    assert "Usage: " in stderr and expected in stderr


@pytest.mark.parametrize(
    ("args", "param"),
    [
        (("exec", "/nonexistent.py", "-l", "python"), "FILE"),
        (("exec", "-", "-l", "python", "--tests", "/nonexistent-tests.py"), "--tests"),
        (("solve", "/nonexistent.py", "-l", "python"), "PROMPT"),
        (("solve", "/", "-l", "python"), "PROMPT"),
    ],
)
def test_an_unreadable_input_file_names_the_parameter(args: tuple[str, ...], param: str) -> None:
    result = _codejury(*args, stdin="print(1)\n")
    assert result.returncode == 2
    stderr = _one_clear_error(result)
    assert f"Invalid value for {param}: cannot read /" in stderr
    assert "No such file or directory" in stderr or "Is a directory" in stderr


def test_an_unknown_dataset_lists_the_known_ones() -> None:
    result = _codejury("eval", "--dataset", "nosuch")
    assert result.returncode == 2
    stderr = _one_clear_error(result)
    assert "'nosuch' is not a dataset" in stderr
    assert "mbxp" in stderr and "multipl-e/humaneval" in stderr


def test_eval_of_a_file_in_an_unknown_shape_names_the_fields_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"task_id": "T/1", "prompt": "p", "code": "c"}\n')
    result = _codejury("--run-dir", str(tmp_path), "eval", "--file", str(path))
    assert result.returncode == 1
    stderr = _one_clear_error(result)
    assert f"{path}: not a format codejury reads" in stderr
    assert "MultiPL-E also needs name, language, tests, stop_tokens" in stderr
    assert "EvalPlus (HumanEval+, MBPP+) also needs entry_point" in stderr


def test_a_missing_optional_dependency_names_its_extra(tmp_path: Path) -> None:
    """As if the train extra were not installed: pyarrow cannot be imported."""
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        f"sys.argv = ['codejury', '--run-dir', {str(tmp_path)!r}, 'train', 'stats']\n"
        "from codejury.cli import main; main()"
    )
    result = _python("-c", code)
    assert result.returncode == 1
    stderr = _one_clear_error(result)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "'pyarrow'" in lines[0] and "'train' extra" in lines[0]
    assert "pip install 'codejury[train]'" in lines[0] and "bin/setup" in lines[0]


@pytest.mark.parametrize(
    "command", [("operator", "-n", "ml"), ("traffic-exporter", "--run", "r", "-n", "ml")]
)
def test_without_cluster_credentials_kubernetes_commands_say_where_they_looked(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    """Neither in a pod (no KUBERNETES_SERVICE_HOST) nor a kubeconfig: one line, exit 2.
    Before, the operator let kopf log LoginError tracebacks and exited 0."""
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "absent-kubeconfig")}
    base = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    result = subprocess.run(
        [sys.executable, "-m", "codejury", *command],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in base.items() if not k.startswith("CODEJURY_")}, **env},
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in _one_clear_error(result).splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "no Kubernetes credentials" in lines[0]
    assert "not in a cluster" in lines[0] and "absent-kubeconfig" in lines[0]
    assert "set KUBECONFIG" in lines[0]


def test_deploy_render_refuses_bad_values_naming_them(tmp_path: Path) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text("kafka: {mode: zookeeper}\n")
    result = _codejury("deploy", "render", "-f", str(bad))
    assert result.returncode == 1
    lines = [line for line in _one_clear_error(result).splitlines() if line.strip()]
    assert len(lines) == 1 and "'/kafka/mode'" in lines[0] and "'strimzi'" in lines[0]
    unknown = _codejury("deploy", "render", "--profile", "nosuch")
    assert unknown.returncode == 1
    assert "no profile 'nosuch': use one of" in _one_clear_error(unknown)
    rendered = _codejury("deploy", "render", "--profile", "local", "-o", str(tmp_path / "m.yaml"))
    assert rendered.returncode == 0, rendered.stderr
    assert "kind: Deployment" in (tmp_path / "m.yaml").read_text()


def test_the_worker_probe_port_says_serving_once_it_consumes(tmp_path: Path) -> None:
    """`codejury worker --health-port`: what the sandbox worker pod's probes ask."""
    import signal
    import socket
    import time

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    command = [sys.executable, "-m", "codejury", "--run-dir", str(tmp_path), "worker"]
    with subprocess.Popen(
        [*command, "--name", "probe", "--concurrency", "1", "--health-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=base,
    ) as worker:
        status = None
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline and worker.poll() is None:
                    try:
                        status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                    except grpc.RpcError:
                        status = None  # not listening yet
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                    time.sleep(0.5)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
    assert status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("command", [("deploy", "images"), ("deploy", "local")])
def test_without_podman_the_deploy_commands_name_the_package(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    result = _codejury(*command, env={"PATH": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in _one_clear_error(result).splitlines() if line.strip()]
    assert lines == ["error: podman is not installed: apt-get install podman runc"], lines


def test_solve_with_no_server_at_the_target_fails_fast_in_one_line(tmp_path: Path) -> None:
    """Tried as a new user would: nothing listening at --target used to print nothing for
    over 100 s. Now: the address, the fix, a non-zero exit, within the connect timeout."""
    import socket
    import time

    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prompt = tmp_path / "add.py"
    prompt.write_text("def add(a, b):\n")
    started = time.monotonic()
    result = _codejury("solve", str(prompt), "-l", "python", "--target", f"127.0.0.1:{port}")
    assert time.monotonic() - started < 30
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"no Solve server at 127.0.0.1:{port}" in lines[0] and "codejury up" in lines[0]
