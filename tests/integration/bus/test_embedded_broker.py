"""Starting and stopping tansu, and the errors a user sees when it cannot start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from codejury.bus.admin import admin_client
from codejury.bus.embedded import EmbeddedBroker
from codejury.bus.errors import EmbeddedBrokerError
from codejury.bus.topics import all_topics
from codejury.core.settings import load_settings


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_starts_on_loopback_creates_topics_and_stops(tmp_path: Path) -> None:
    settings = load_settings()
    with EmbeddedBroker(settings.broker, settings.bus, log_dir=tmp_path) as broker:
        assert broker.running and broker.bootstrap_servers.startswith("127.0.0.1:")
        admin = admin_client(broker.bus_settings)
        try:
            assert set(all_topics()) <= set(admin.list_topics())
        finally:
            admin.close()
        port = broker.port
    assert not broker.running
    assert not _port_open(port)


def test_missing_binary_names_the_setting_to_fix(tmp_path: Path) -> None:
    settings = load_settings({"broker": {"tansu_binary": tmp_path / "no-such-tansu"}})
    broker = EmbeddedBroker(settings.broker, settings.bus, log_dir=tmp_path)
    with pytest.raises(EmbeddedBrokerError, match="CODEJURY_BROKER__TANSU_BINARY"):
        broker.start()


def test_a_binary_that_exits_at_once_is_reported_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'cannot bind' >&2\nexit 3\n")
    fake.chmod(0o755)
    settings = load_settings({"broker": {"tansu_binary": fake, "startup_timeout_s": 10}})
    broker = EmbeddedBroker(settings.broker, settings.bus, log_dir=tmp_path)
    with pytest.raises(EmbeddedBrokerError, match=r"exited with code 3.*tansu-\d+\.log"):
        broker.start()
    assert "cannot bind" in broker.log_path.read_text()
