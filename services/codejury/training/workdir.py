"""An iteration's directory: one folder per step, each written whole or not at all.

```
<run_dir>/training/iterations/<I>/<step>/result.json   the step is complete
<run_dir>/training/iterations/<I>/.<step>.partial/     a step being written (or killed)
```

A step writes into its ``.partial`` folder and renames it to its final name as its last
act (after ``result.json`` is written and fsync'd), so a folder with a ``result.json``
is a finished step and anything else is debris of a killed one, removed when the step
runs again. A rerun of the iteration skips every finished step.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from codejury.core.files import fsync_dir

RESULT = "result.json"


def iteration_dir(run_dir: Path, iteration: int) -> Path:
    return run_dir / "training" / "iterations" / str(iteration)


def is_complete(step_dir: Path) -> bool:
    return (step_dir / RESULT).is_file()


def read_result(step_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((step_dir / RESULT).read_text())
    return data


@contextlib.contextmanager
def writing_step(step_dir: Path) -> Iterator[Path]:
    """Yield an empty ``.partial`` folder to write the step into; on a clean exit it must
    hold ``result.json`` and becomes ``step_dir``; on an error it is removed."""
    partial = step_dir.parent / f".{step_dir.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if not (partial / RESULT).is_file():
            raise RuntimeError(f"step {step_dir.name} finished without writing {RESULT}")
        _fsync_tree(partial)
        shutil.rmtree(step_dir, ignore_errors=True)  # a result-less leftover of an old layout
        os.rename(partial, step_dir)
        fsync_dir(step_dir.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def write_result(folder: Path, result: dict[str, Any]) -> None:
    (folder / RESULT).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w") as f:
        for record in records:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            count += 1
    return count


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    for folder in [*sorted(p for p in root.rglob("*") if p.is_dir()), root]:
        fsync_dir(folder)
