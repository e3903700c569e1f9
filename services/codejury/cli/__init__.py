"""The ``codejury`` command line: one module per group of commands, settings built once."""

from codejury.cli import (
    bench,
    control,
    deploy,
    evaluation,
    execution,
    generation,
    infra,
    method,
    operator,
    pipeline,
    reranking,
    smoke,
    training,
)
from codejury.cli.app import app, main

__all__ = [
    "app",
    "bench",
    "control",
    "deploy",
    "evaluation",
    "execution",
    "generation",
    "infra",
    "main",
    "method",
    "operator",
    "pipeline",
    "reranking",
    "smoke",
    "training",
]
