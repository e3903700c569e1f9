"""The reranker model registry: immutable versions under one URI, plus stable/canary marks.

Layout (a local directory now; the same keys on object storage later)::

    <root>/versions/<version_id>/manifest.json   the Manifest
    <root>/versions/<version_id>/model/          save_pretrained output: config, weights,
                                                 tokenizer files
    <root>/channels.json                         {"stable": ..., "canary": ...}

A version appears atomically: it is written under ``<root>/.staging/`` and renamed into
``versions/`` complete, so a reader never sees half a version. The registry only moves
files; loading the weights is ``codejury.reranking.model``'s job.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.reranking.errors import (
    CorruptVersionError,
    RegistryConfigError,
    UnknownVersionError,
    VersionConflictError,
)
from codejury.reranking.manifest import (
    CHANNELS,
    Channels,
    Manifest,
    check_version_id,
    parse_channels,
    parse_manifest,
)

log = get_logger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def registry_uri(settings: Settings) -> str:
    """The configured registry URI, or ``<run_dir>/reranking/registry``."""
    return settings.reranking.registry_uri or str(settings.run_dir / "reranking" / "registry")


VERSION_FILE = "codejury-version"
# A copy of the manifest inside the model directory: KServe's storage initializer copies only
# that directory, and the server still has to know what it serves (an untrained head?).
MODEL_MANIFEST_FILE = "codejury-manifest.json"


def version_in_model_dir(path: Path) -> str | None:
    """The version id a registered model directory records (None before it did)."""
    try:
        return check_version_id((path / VERSION_FILE).read_text().strip())
    except FileNotFoundError:
        return None


def manifest_in_model_dir(path: Path) -> Manifest | None:
    """The manifest a registered model directory carries (None for one registered before
    model directories carried it); CorruptVersionError when it is unreadable."""
    file = path / MODEL_MANIFEST_FILE
    try:
        text = file.read_text()
    except FileNotFoundError:
        return None
    return parse_manifest(text, where=str(file))


def check_model_dir(path: Path, *, what: str) -> None:
    """CorruptVersionError unless ``path`` holds a config and weights (cheap: no loading)."""
    if not path.is_dir():
        raise CorruptVersionError(f"{what}: model directory {path} is missing: re-register it")
    if not (path / "config.json").is_file():
        raise CorruptVersionError(
            f"{what}: {path} has no config.json: save the model with save_pretrained and "
            "register it again"
        )
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise CorruptVersionError(
            f"{what}: {path} has no weights (expected one of {', '.join(WEIGHT_FILES)}): "
            "register it again"
        )


class ModelRegistry:
    """Reranker versions under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_uri(cls, uri: str) -> ModelRegistry:
        """A registry for a directory path or a ``file://`` URI."""
        parsed = urlparse(uri)
        if parsed.scheme in ("", "file"):
            path = Path(parsed.path if parsed.scheme == "file" else uri).expanduser()
            return cls(path)
        raise RegistryConfigError(
            f"reranking.registry_uri (CODEJURY_RERANKING__REGISTRY_URI) {uri!r}: scheme "
            f"{parsed.scheme!r} is not supported yet; use a directory or a file:// URI"
        )

    # -- versions --------------------------------------------------------------------

    def _version_dir(self, version_id: str) -> Path:
        return self.root / "versions" / check_version_id(version_id)

    def register(self, model_dir: Path, manifest: Manifest) -> Manifest:
        """Copy ``model_dir`` in as ``manifest.version_id``; versions are never overwritten."""
        target = self._version_dir(manifest.version_id)
        if target.exists():
            raise VersionConflictError(
                f"version {manifest.version_id!r} is already registered in {self.root}: "
                "versions are immutable, register under a new id"
            )
        if manifest.parent is not None:
            self.get(manifest.parent)  # UnknownVersionError names the parent
        check_model_dir(model_dir, what=f"registering {manifest.version_id!r}")
        staging = self.root / ".staging" / uuid.uuid4().hex
        try:
            shutil.copytree(model_dir, staging / "model")
            # The model directory names its version too: KServe mounts only it.
            (staging / "model" / VERSION_FILE).write_text(manifest.version_id + "\n")
            (staging / "model" / MODEL_MANIFEST_FILE).write_text(manifest.to_json())
            (staging / "manifest.json").write_text(manifest.to_json())
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(target)
            except OSError as exc:  # someone registered the same id meanwhile
                raise VersionConflictError(
                    f"version {manifest.version_id!r} appeared in {self.root} while it was "
                    "being registered: register under a new id"
                ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("registry.registered", version=manifest.version_id, root=str(self.root))
        return manifest

    def get(self, version_id: str) -> Manifest:
        """The manifest of ``version_id``: UnknownVersionError / CorruptVersionError."""
        path = self._version_dir(version_id) / "manifest.json"
        if not path.parent.is_dir():
            known = [m.version_id for m in self.versions()]
            raise UnknownVersionError(
                f"version {version_id!r} is not registered in {self.root} "
                f"(known: {', '.join(known) or 'none'})"
            )
        try:
            text = path.read_text()
        except OSError as exc:
            raise CorruptVersionError(
                f"version {version_id!r}: cannot read {path} ({exc}): re-register the version"
            ) from exc
        manifest = parse_manifest(text, where=str(path))
        if manifest.version_id != version_id:
            raise CorruptVersionError(
                f"{path} names version {manifest.version_id!r}, not {version_id!r}: "
                "the directory was renamed by hand; re-register the version"
            )
        return manifest

    def model_dir(self, version_id: str) -> Path:
        """The model files of ``version_id``, checked to be present (not loaded)."""
        self.get(version_id)
        path = self._version_dir(version_id) / "model"
        check_model_dir(path, what=f"version {version_id!r}")
        return path

    def versions(self) -> list[Manifest]:
        """Every readable version, oldest first; unreadable ones are logged and skipped."""
        base = self.root / "versions"
        found = []
        for entry in sorted(base.iterdir()) if base.is_dir() else []:
            path = entry / "manifest.json"
            try:
                found.append(parse_manifest(path.read_text(), where=str(path)))
            except (OSError, CorruptVersionError) as exc:
                log.warning("registry.unreadable_version", path=str(entry), error=str(exc))
        return sorted(found, key=lambda m: (m.created_at, m.version_id))

    # -- channels --------------------------------------------------------------------

    def channels(self) -> Channels:
        path = self.root / "channels.json"
        if not path.exists():
            return Channels()
        return parse_channels(path.read_text(), where=str(path))

    def resolve(self, name: str) -> str:
        """A version id for ``name``, which may be a channel ('stable', 'canary') or an id."""
        if name not in CHANNELS:
            self.get(name)
            return name
        version: str | None = getattr(self.channels(), name)
        if version is None:
            raise UnknownVersionError(
                f"no version is marked {name} in {self.root}: mark one first "
                f"(ModelRegistry.mark_{name} / `codejury reranker mark {name} VERSION`)"
            )
        return version

    def mark_stable(self, version_id: str) -> Channels:
        """Make ``version_id`` stable; it stops being the canary if it was."""
        self.get(version_id)
        with self._channels_lock():
            current = self.channels()
            canary = None if current.canary == version_id else current.canary
            return self._write_channels(Channels(stable=version_id, canary=canary))

    def mark_canary(self, version_id: str | None) -> Channels:
        """Make ``version_id`` the canary (None: no canary)."""
        if version_id is not None:
            self.get(version_id)
        with self._channels_lock():
            current = self.channels()
            if version_id is not None and current.stable == version_id:
                raise VersionConflictError(
                    f"version {version_id!r} is already stable: a canary must be another version"
                )
            return self._write_channels(Channels(stable=current.stable, canary=version_id))

    @contextmanager
    def _channels_lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".channels.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_channels(self, channels: Channels) -> Channels:
        tmp = self.root / f".channels.{uuid.uuid4().hex}.json"
        tmp.write_text(channels.model_dump_json(indent=2) + "\n")
        os.replace(tmp, self.root / "channels.json")
        log.info("registry.channels", stable=channels.stable, canary=channels.canary)
        return channels
