"""The manifest of a reranker version, and the stable/canary channels (pure data).

A version is immutable once registered; its manifest says where it came from (parent
version, self-training iteration, data snapshot), how it measured, and what backbone
it was trained from. Both documents are JSON on disk (``manifest.json``,
``channels.json``) so that the layout reads the same on object storage.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from codejury.reranking.errors import CorruptVersionError, InvalidRequestError

MANIFEST_FORMAT = 1
# Safe as a directory name, a URL path segment and a Kubernetes label value.
_VERSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
CHANNELS = ("stable", "canary")


def check_version_id(version_id: str, *, field: str = "version") -> str:
    """The id unchanged, or InvalidRequestError naming the rule."""
    if not _VERSION_ID.fullmatch(version_id):
        raise InvalidRequestError(
            f"{field} {version_id!r} is not a valid version id: use 1-63 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit (e.g. 'rr-0003')"
        )
    if version_id in CHANNELS:
        raise InvalidRequestError(
            f"{field} {version_id!r} is a channel name, not a version id: pick another id"
        )
    return version_id


class Manifest(BaseModel):
    """What a reranker version is and where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest_format: Literal[1] = Field(default=1, description="Layout version.")
    version_id: str = Field(description="The version's id, unique in its registry.")
    parent: str | None = Field(default=None, description="The version this one was trained from.")
    iteration: int = Field(default=0, ge=0, description="Self-training iteration that produced it.")
    data_snapshot_id: str = Field(
        default="", description="Training data snapshot it was trained on."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Evaluation metrics, e.g. pass@1 of its picks."
    )
    created_at: datetime = Field(
        default_factory=lambda: datetime.now(UTC), description="When it was registered (UTC)."
    )
    backbone: str = Field(description="Base model it was trained from (name or path).")

    @field_validator("version_id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return check_version_id(value, field="version_id")

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @property
    def untrained(self) -> bool:
        """A bare score head: registered from a backbone, never trained on a snapshot (its
        scores are near-constant noise, so its picks are near-random)."""
        return self.parent is None and not self.data_snapshot_id

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


def parse_manifest(text: str, *, where: str) -> Manifest:
    """A manifest from its JSON; CorruptVersionError naming the file and the problem."""
    try:
        return Manifest.model_validate_json(text)
    except (ValidationError, ValueError) as exc:
        raise CorruptVersionError(
            f"{where} is not a valid manifest ({_first_error(exc)}): re-register the version"
        ) from exc


class Channels(BaseModel):
    """Which version serves as stable and which as canary (either may be unset)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stable: str | None = Field(default=None, description="The version most traffic goes to.")
    canary: str | None = Field(default=None, description="A candidate version under evaluation.")


def parse_channels(text: str, *, where: str) -> Channels:
    try:
        return Channels.model_validate_json(text)
    except (ValidationError, ValueError) as exc:
        raise CorruptVersionError(
            f"{where} is not a valid channels file ({_first_error(exc)}): "
            "mark the stable version again"
        ) from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "document"
        return f"{where}: {err['msg']}"
    return str(exc)
