"""Kafka's TLS and SASL settings: complete or refused at start, and handed to every
client as kafka-python's arguments (the password as the secret's value, never logged)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from codejury.bus.admin import security_options
from codejury.core.errors import ConfigurationError
from codejury.core.settings import load_settings


def _bus(**fields: Any) -> Any:
    return load_settings({"bus": fields}).bus


def test_plaintext_by_default() -> None:
    assert security_options(_bus()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_over_tls_with_scram() -> None:
    bus = _bus(
        security_protocol="SASL_SSL",
        ssl_cafile="/etc/kafka/ca.pem",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="codejury",
        sasl_password="s3cret-k4fka",
    )
    assert security_options(bus) == {
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": "/etc/kafka/ca.pem",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "codejury",
        "sasl_plain_password": "s3cret-k4fka",
    }
    assert "s3cret-k4fka" not in repr(bus) and "s3cret-k4fka" not in bus.model_dump_json()


def test_mutual_tls_sends_the_client_certificate() -> None:
    bus = _bus(
        security_protocol="SSL",
        ssl_cafile=Path("/ca.pem"),
        ssl_certfile=Path("/me.pem"),
        ssl_keyfile=Path("/me-key.pem"),
    )
    options = security_options(bus)
    assert (options["ssl_certfile"], options["ssl_keyfile"]) == ("/me.pem", "/me-key.pem")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"security_protocol": "SASL_SSL"}, r"SASL_SSL needs bus\.sasl_mechanism"),
        (
            {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"},
            r"security_protocol=PLAINTEXT does not use SASL",
        ),
        ({"security_protocol": "SSL", "ssl_certfile": "/me.pem"}, r"go together"),
        ({"sasl_mechanism": "GSSAPI"}, r"bus\.sasl_mechanism"),
    ],
)
def test_incomplete_security_is_refused_at_start(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        _bus(**fields)
