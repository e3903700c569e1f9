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
        digest.update(repr((self.compile, self.run)).encode())
        return digest.hexdigest()[:16]


def expand(argv: tuple[str, ...], *, src: str, main: str) -> list[str]:
    return [a.replace(SRC, src).replace(BUILD, BUILD_DIR).replace(MAIN, main) for a in argv]


_JAVA_PUBLIC_CLASS = re.compile(r"^\s*public\s+(?:final\s+)?class\s+(\w+)", re.MULTILINE)


def java_file_stem(program: str) -> str:
    """javac wants ``public class X`` in ``X.java``; programs without one use Main."""
    match = _JAVA_PUBLIC_CLASS.search(program)
    return match.group(1) if match else "Main"
