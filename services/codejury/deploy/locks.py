"""The images' dependency locks: every distribution an image installs, pinned with its
hash, resolved once by pip (``pip install --dry-run --report``) and committed, so an image
build resolves nothing (``pip install --no-deps --require-hashes -r <lock>``).

Each image's lock is the resolution of CodeJury with some extras; the trainer's is
resolved under the runtime's pins (it is built on the runtime image) and holds only what it
adds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codejury.deploy import SOURCE_ROOT
from codejury.deploy.errors import LockError

ROOT = SOURCE_ROOT
LOCK_DIR = ROOT / "images" / "locks"
#: The images' interpreter: Debian bookworm's python3. Markers are evaluated for it, not
#: for the Python running the resolution (redis needs async-timeout below 3.11.3: a lock
#: resolved on 3.11.7 left it out and the worker could not import redis).
IMAGE_PYTHON = "3.11.2"

# pip evaluates environment markers for the running interpreter (--python-version changes
# wheel tags, not markers): run it with the image's python_full_version instead.
_PIP_AS_IMAGE = f"""
import runpy, sys
from pip._vendor.packaging import markers
_default = markers.default_environment
def _image():
    env = _default()
    env.update(python_full_version="{IMAGE_PYTHON}", python_version="{IMAGE_PYTHON[:4]}")
    return env
markers.default_environment = _image
sys.argv = ["pip", *sys.argv[1:]]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class LockSpec:
    image: str
    extras: tuple[str, ...]
    on_top_of: str | None = None  # the image this one is built on: its pins constrain this


LOCKS: tuple[LockSpec, ...] = (
    LockSpec("runtime", ("serve", "k8s", "tracing")),
    # the Celery worker: its spans of the sandbox runs (tracing.exporter) need the SDK
    LockSpec("sandbox", ("tracing",)),
    LockSpec("trainer", ("serve", "k8s", "tracing", "train"), on_top_of="runtime"),
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str

    def line(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


def lock_path(image: str) -> Path:
    return LOCK_DIR / f"{image}.txt"


def read_pins(path: Path) -> dict[str, Pin]:
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, _, digest = line.partition(" --hash=sha256:")
        name, _, version = requirement.partition("==")
        pins[canonical(name)] = Pin(name, version, digest.strip())
    return pins


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def pins_from_report(report: Mapping[str, object]) -> dict[str, Pin]:
    """The pins of a ``pip --report``, CodeJury itself left out (the image copies it)."""
    pins = {}
    for item in report["install"]:  # type: ignore[attr-defined]
        meta = item["metadata"]
        if canonical(meta["name"]) == "codejury":
            continue
        hashes = (item["download_info"].get("archive_info") or {}).get("hashes") or {}
        if "sha256" not in hashes:
            raise LockError(f"{meta['name']} {meta['version']}: pip reported no sha256 to pin")
        pins[canonical(meta["name"])] = Pin(meta["name"], meta["version"], hashes["sha256"])
    return pins


def resolve(extras: Sequence[str], constraints: Path | None = None) -> dict[str, Pin]:
    """Resolve ``codejury[extras]`` with pip, installing nothing."""
    target = f"{ROOT}[{','.join(extras)}]" if extras else str(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-c",
            _PIP_AS_IMAGE,
            "install",
            "--dry-run",
            "--ignore-installed",
        ]
        command += ["--quiet", "--report", str(report), target]
        if constraints is not None:
            command += ["--constraint", str(constraints)]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            tail = " ".join(done.stderr.strip().splitlines()[-3:])
            raise LockError(f"pip could not resolve {target}: {tail}")
        return pins_from_report(json.loads(report.read_text()))


def render_lock(spec: LockSpec, pins: Mapping[str, Pin]) -> str:
    extras = ",".join(spec.extras) or "no extras"
    header = [
        f"# The {spec.image} image's dependencies: codejury ({extras}), pinned with hashes,",
        f"# for the image's Python {IMAGE_PYTHON}.",
        "# Written by `codejury deploy lock`; do not edit by hand.",
    ]
    if spec.on_top_of:
        header.append(
            f"# Only what it adds to the {spec.on_top_of} image, resolved under its pins."
        )
    return "\n".join(header + [pins[k].line() for k in sorted(pins)]) + "\n"


def write_locks(images: Sequence[str] | None = None) -> list[Path]:
    written = []
    for spec in LOCKS:
        if images and spec.image not in images:
            continue
        constraints = None
        base: dict[str, Pin] = {}
        if spec.on_top_of:
            constraints = LOCK_DIR / "constraints.tmp"
            base = read_pins(lock_path(spec.on_top_of))
            constraints.write_text("".join(f"{p.name}=={p.version}\n" for p in base.values()))
        try:
            pins = resolve(spec.extras, constraints)
        finally:
            if constraints is not None:
                constraints.unlink(missing_ok=True)
        added = {k: p for k, p in pins.items() if k not in base}
        path = lock_path(spec.image)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_lock(spec, added))
        written.append(path)
    return written
