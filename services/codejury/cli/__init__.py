"""The ``codejury`` command line: one module per group of commands, settings built once."""

from codejury.cli import demo, execution, infra
from codejury.cli.app import app, main

__all__ = ["app", "demo", "execution", "infra", "main"]
