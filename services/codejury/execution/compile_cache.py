"""The compile cache's records: where a program's build lives and what its compile said.

A build dir is keyed by the toolchain's fingerprint, the precompiled header in use, the
source file name and the program text; inside it ``.codejury-compile.json`` keeps the
compile's verdict (none: it succeeded) and its log, so a hit answers like the compile did.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from codejury.execution.languages import Language
from codejury.execution.statuses import Verdict

MARKER = ".codejury-compile.json"
# A batch compile's time for one program, until the first run of that program claims it
# (from any worker process: unlinking is the atomic claim).
BATCH_TIME = ".codejury-batch-ms"


def cache_path(
    cache_dir: Path, language: Language, program: str, source: str, pch: Path | None
) -> Path:
    key = hashlib.sha256(
        f"{language.toolchain_fingerprint()}\0{pch}\0{source}\0".encode() + program.encode()
    ).hexdigest()[:32]
    return cache_dir / "build" / language.name / key


def publish(work: Path, final: Path) -> None:
    """Move a finished build dir to its place in the cache (atomic). A twin compiled
    concurrently may have got there first: the cache keeps that one."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(work, final)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)


def write_marker(
    build: Path, verdict: Verdict | None, log_text: str, *, batch_ms: float | None = None
) -> None:
    """What a cache hit reads back: the compile's verdict (None: it succeeded) and log;
    ``batch_ms`` when a batch compiled it for runs still to come."""
    if batch_ms is not None:
        (build / BATCH_TIME).write_text(f"{batch_ms:g}")
    (build / MARKER).write_text(
        json.dumps(
            {
                "status": None if verdict is None else verdict.status,
                "detail": None if verdict is None else verdict.detail,
                "log": log_text,
            }
        )
    )


def read_cached(build: Path) -> tuple[bool, Verdict | None]:
    """(cache hit, the compile's verdict: None when it succeeded)."""
    marker = build / MARKER
    if not marker.exists():
        return False, None
    data = json.loads(marker.read_text())
    if data["status"] is None:
        return True, None
    return True, Verdict(data["status"], data["detail"])


def compile_log(build: Path) -> str:
    marker = build / MARKER
    if not marker.exists():
        return ""
    log_text: str = json.loads(marker.read_text())["log"]
    return log_text[-(64 << 10) :]


def claim_batch_time(build: Path) -> float:
    """The compile time a cache hit reports: a batch's time for this program to its first
    run (the run the batch compiled it for), 0 to every other hit."""
    path = build / BATCH_TIME
    try:
        millis = float(path.read_text())
        path.unlink()
    except (OSError, ValueError):
        return 0.0
    return millis
