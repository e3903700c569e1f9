"""The ``codejury`` command line: one module per group of commands, settings built once."""

from codejury.cli import (
    bench,
    demo,
    execution,
    generation,
    infra,
    pipeline,
    reranking,
    training,
)
from codejury.cli.app import app, main

__all__ = [
    "app",
    "bench",
    "demo",
    "execution",
    "generation",
    "infra",
    "main",
    "pipeline",
    "reranking",
    "training",
]
