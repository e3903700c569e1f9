"""The codejury command as a user runs it: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _codejury(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    return subprocess.run(
        [sys.executable, "-m", "codejury", *args],
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
