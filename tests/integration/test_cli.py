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


def test_protos_check_passes_on_committed_stubs() -> None:
    result = _codejury("protos", "--check")
    assert result.returncode == 0, result.stderr


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
