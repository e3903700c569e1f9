"""Starting and stopping tansu, and the errors a user sees when it cannot start."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from codejury.bus.admin import admin_client
from codejury.bus.embedded import EmbeddedBroker
from codejury.bus.errors import EmbeddedBrokerError
from codejury.bus.topics import all_topics
from codejury.core.settings import load_settings

from tests.children import exited, marked_line


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


# A caller that starts the broker, prints tansu's pid, then waits to be killed.
_CALLER = """
import sys, time
from pathlib import Path
from codejury.bus.embedded import EmbeddedBroker
from codejury.core.settings import load_settings
settings = load_settings()
broker = EmbeddedBroker(settings.broker, settings.bus, log_dir=Path(sys.argv[1])).start()
print("tansu", broker.port, broker._process.pid, flush=True)
time.sleep(300)
"""


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux's setpriv")
def test_a_caller_killed_by_sigkill_takes_tansu_along(tmp_path: Path) -> None:
    # `codejury up` killed outright left tansu holding its port for the next `up`.
    with subprocess.Popen(
        [sys.executable, "-c", _CALLER, str(tmp_path)], stdout=subprocess.PIPE
    ) as caller:
        try:
            assert caller.stdout is not None
            port, pid = marked_line(caller.stdout, b"tansu ")
            assert _port_open(int(port)) and not exited(int(pid))
            caller.kill()
            caller.wait(timeout=10)
            deadline = time.monotonic() + 10
            while _port_open(int(port)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _port_open(int(port))
        finally:
            caller.kill()
