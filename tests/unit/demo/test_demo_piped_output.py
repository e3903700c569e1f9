"""The demo's tables stay readable where its output is not a terminal (a CI log, `nohup`,
`| tee`): rich's default 80 columns cut a nine-column table's cells to "10…"."""

from __future__ import annotations

import os
import subprocess
import sys

# Nine columns as wide as the demo's table (language, problems, greedy ... gap).
TABLE = """
from rich.table import Table
from codejury.cli.app import console
table = Table(*[f"column {i}" for i in range(9)])
table.add_row("javascript", *["100.0%"] * 8)
console.print(table)
"""


def _print_table(env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-c", TABLE],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    ).stdout


def test_piped_output_shows_every_cell_whole() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = _print_table(env)
    assert "…" not in out
    assert out.count("100.0%") == 8 and "javascript" in out


def test_columns_still_sets_the_width() -> None:
    # The caller's COLUMNS wins: at 40 the cells are cut again, as the user asked.
    out = _print_table({**os.environ, "COLUMNS": "40"})
    assert max(len(line) for line in out.splitlines()) <= 40
