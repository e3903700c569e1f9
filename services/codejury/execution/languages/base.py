"""What the executor needs to know about a language, as data."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Placeholders in ``compile`` / ``run`` argv: the source file name, the build dir
#: (writable while compiling, read-only at run time) and the program's main name.
SRC, BUILD, MAIN = "{src}", "{build}", "{main}"
BUILD_DIR = "/sandbox/build"


@dataclass(frozen=True)
class BatchCompiler:
    """How a language compiles many programs in one sandbox run (Java: one JVM for all).

    ``helper`` is a source file next to the language modules, built once per toolchain
    with ``build`` (``{src}`` the helper's file, ``{build}`` its output dir). ``run``
    compiles the programs listed in ``{manifest}`` into ``{build}/<name>``, with
    ``{helper}`` the built helper's dir and ``options`` (exactly the single compile's
    options) appended; see CodejuryBatchCompile.java for the protocol.
    """

    helper: str
    build: tuple[str, ...]
    run: tuple[str, ...]
    options: tuple[str, ...]


@dataclass(frozen=True)
class Language:
    name: str  # registry key, e.g. "python"
    aliases: tuple[str, ...]  # dataset spellings: MultiPL-E "py", MBXP "python", ...
    extension: str
    toolchain: tuple[str, ...]  # host executables that must exist for this language
    install: str  # how to install the toolchain on Debian
    run: tuple[str, ...]
    compile: tuple[str, ...] = ()
    stop_sequences: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # Host paths outside /usr and /etc the sandbox must see (read-only).
    ro_paths: tuple[str, ...] = ()
    # Languages whose file name follows the program (Java's public class).
    file_stem: Callable[[str], str] | None = None
    # In-sandbox path of a persistent, writable cache for the compile step (Go's build
    # cache: without it every compile rebuilds the standard library).
    compile_cache: str | None = None
    compile_timeout_s: float = 30.0
    compile_memory_bytes: int = 2 << 30
    run_memory_bytes: int | None = None  # None: the request's limit
    # Languages whose compile/run shape depends on the program (Go test files, Rust
    # #[test] modules): returns the Language to use for it. See ``for_program``.
    variant: Callable[[str], Language] | None = None
    # Compiling a batch's programs together, where the language's start-up dominates.
    batch_compile: BatchCompiler | None = None

    def for_program(self, program: str) -> Language:
        """The language as it must build and run ``program`` (pure: text in, data out)."""
        return self.variant(program) if self.variant else self

    def source_name(self, program: str) -> str:
        stem = self.file_stem(program) if self.file_stem else "main"
        return f"{stem}.{self.extension}"

    def missing_tools(self) -> list[str]:
        return [t for t in self.toolchain if not (Path(t).exists() and os.access(t, os.X_OK))]

    def available(self) -> tuple[bool, str]:
        missing = self.missing_tools()
        if missing:
            return False, f"missing {', '.join(missing)}: {self.install}"
        return True, "ok"

    def toolchain_fingerprint(self) -> str:
        """Changes when a toolchain binary is upgraded: part of the compile-cache key."""
        digest = hashlib.sha256(self.name.encode())
        for tool in self.toolchain:
            try:
                stat = Path(tool).resolve().stat()
                digest.update(f"{tool}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            except OSError:
                digest.update(f"{tool}:missing".encode())
        # what the toolchain reads besides its binaries (Rust's prebuilt crates, ...):
        # bin/setup replaces such a directory whole when it rebuilds it
        for path in self.ro_paths:
            try:
                stat = Path(path).stat()
                digest.update(f"{path}:{stat.st_ino}:{stat.st_mtime_ns}".encode())
            except OSError:
                digest.update(f"{path}:missing".encode())
        digest.update(repr((self.compile, self.run, self.batch_compile)).encode())
        return digest.hexdigest()[:16]


def expand(argv: tuple[str, ...], *, src: str, main: str, **more: str) -> list[str]:
    """The argv with its placeholders filled; ``more`` fills further ``{name}``s."""
    out = []
    for arg in argv:
        filled = arg.replace(SRC, src).replace(BUILD, BUILD_DIR).replace(MAIN, main)
        for name, value in more.items():
            filled = filled.replace(f"{{{name}}}", value)
        out.append(filled)
    return out


_JAVA_PUBLIC_CLASS = re.compile(r"^\s*public\s+(?:final\s+)?class\s+(\w+)", re.MULTILINE)
_JAVA_CLASS = re.compile(r"^\s*(?:(?:public|final|abstract)\s+)*class\s+(\w+)", re.MULTILINE)
_JAVA_MAIN = re.compile(r"\bpublic\s+static\s+void\s+main\s*\(")


def java_file_stem(program: str) -> str:
    """The file name, which is also the class that runs (``java {main}``).

    javac wants ``public class X`` in ``X.java``. Without a public class: ``Main`` when
    the program declares it (MBXP's tests, which mxeval runs as ``java Main``, even when a
    completion adds a ``main`` of its own), else the first class with a ``main`` method
    (MultiPL-E's ``Problem``), else ``Main``.
    """
    public = _JAVA_PUBLIC_CLASS.search(program)
    if public:
        return public.group(1)
    classes = list(_JAVA_CLASS.finditer(program))
    if any(c.group(1) == "Main" for c in classes):
        return "Main"
    for current, following in zip(classes, [*classes[1:], None], strict=True):
        body = program[current.end() : following.start() if following else len(program)]
        if _JAVA_MAIN.search(body):
            return current.group(1)
    return "Main"


#: Where node finds the packages datasets require: Debian's node-* packages (lodash, for
#: MBXP's tests; this nodejs build does not search there by itself) and bin/setup's npm
#: prefix (js-md5, for HumanEval-X's JavaScript/162). The sandbox mounts NODE_TOOLS.
NODE_TOOLS = "/opt/codejury"
NODE_PATH = f"/usr/share/nodejs:{NODE_TOOLS}/node_modules"
