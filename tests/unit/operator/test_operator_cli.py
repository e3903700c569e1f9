"""``codejury operator``: registered, and its settings checked before kopf starts."""

from __future__ import annotations

from codejury.cli import app
from typer.testing import CliRunner


def test_the_operator_command_is_registered_with_a_liveness_endpoint() -> None:
    result = CliRunner().invoke(app, ["operator", "--help"])
    assert result.exit_code == 0
    assert "--liveness" in result.output and "--kserve-mode" in result.output


def test_the_operator_refuses_to_start_without_namespaces() -> None:
    result = CliRunner().invoke(app, ["operator"])
    assert result.exit_code != 0
    assert "--all-namespaces" in str(result.exception)


def test_the_operator_refuses_an_unknown_kserve_mode() -> None:
    result = CliRunner().invoke(app, ["operator", "-n", "ml", "--kserve-mode", "Knative"])
    assert result.exit_code != 0
    assert "use Serverless or Standard" in str(result.exception)
