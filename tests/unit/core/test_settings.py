from __future__ import annotations

from pathlib import Path

import pytest
from codejury.core.errors import ConfigurationError
from codejury.core.settings import load_settings, settings_env
from pydantic import ValidationError


def test_defaults_fit_tansu_and_the_embedded_mode() -> None:
    settings = load_settings()
    assert settings.bus.session_timeout_ms == 6000  # tansu joins wait ~half of it
    assert settings.celery.broker_url is None  # -> filesystem:// under the run dir
    assert settings.run_dir == Path(".codejury")


def test_environment_with_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEJURY_BUS__BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("CODEJURY_CELERY__WORKER_CONCURRENCY", "7")
    monkeypatch.setenv("CODEJURY_LOG_FORMAT", "json")
    settings = load_settings()
    assert settings.bus.bootstrap_servers == "kafka:9092"
    assert settings.celery.worker_concurrency == 7
    assert settings.log_format == "json"


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEJURY_RUN_DIR", "/from/env")
    assert load_settings({"run_dir": "/from/cli"}).run_dir == Path("/from/cli")


@pytest.mark.parametrize(
    "name", ["CODEJURY_RUNDIR", "CODEJURY_BUS__BOOTSTRAP", "CODEJURY_BUS__BOOTSTRAP_SERVERS__X"]
)
def test_unknown_setting_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigurationError, match=f"unknown setting.*{name}.*codejury settings"):
        load_settings()


def test_invalid_value_names_field_env_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEJURY_BUS__TOPIC_PARTITIONS", "0")
    with pytest.raises(
        ConfigurationError, match=r"bus\.topic_partitions \(CODEJURY_BUS__TOPIC_PARTITIONS\).*'0'"
    ):
        load_settings()


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="nonsense"):
        load_settings({"nonsense": 1})


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.log_level = "DEBUG"  # type: ignore[misc]


def test_settings_env_round_trips_through_a_child_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    original = load_settings(
        {
            "run_dir": tmp_path,
            "bus": {"bootstrap_servers": "127.0.0.1:1234", "retry_backoff_s": 0.5},
        }
    )
    for name, value in settings_env(original).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


def test_with_group_replaces_fields_of_one_group_only() -> None:
    from codejury.core.settings import with_group

    base = load_settings({"training": {"ppo_steps": 10}, "generation": {"max_new_tokens": 64}})
    changed = with_group(base, "training", ppo_steps=2, store_dir=None)
    assert (changed.training.ppo_steps, base.training.ppo_steps) == (2, 10)
    assert changed.generation == base.generation and changed.run_dir == base.run_dir
    assert changed.training.seed == base.training.seed


def test_stage_health_parses_into_stage_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CODEJURY_PIPELINE__STAGE_HEALTH",
        " generation=codejury-generation.ns.svc:50051, execution=10.0.0.7:60052,"
        "reranking=[::1]:50053,",
    )
    assert load_settings().pipeline.stage_health_targets == {
        "generation": "codejury-generation.ns.svc:50051",
        "execution": "10.0.0.7:60052",
        "reranking": "[::1]:50053",
    }
    # empty: no watch (what a chart user sets in `settings:` to turn it off)
    assert load_settings({"pipeline": {"stage_health": ""}}).pipeline.stage_health_targets == {}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("generation=codejury-generation", r"'generation=codejury-generation' is not stage=host"),
        ("codejury-generation:50051", r"is not stage=host:port; write e\.g\. generation="),
        ("generation=h:70000", r"'generation=h:70000' is not stage=host:port"),
        ("generation=a:1,generation=b:2", r"'generation' is named twice"),
    ],
)
def test_a_wrong_stage_health_stops_the_start_naming_the_entry(value: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"CODEJURY_PIPELINE__STAGE_HEALTH.*{match}"):
        load_settings({"pipeline": {"stage_health": value}})
