"""The front door's watch over the stages' health (pipeline.stage_health), against real
gRPC health servers playing the stages and a real front door on the session's tansu: a
stage NOT_SERVING or gone makes Solve fail fast with UNAVAILABLE naming it, nothing is
published, and Solve is taken again once it answers SERVING."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from codejury.bus.embedded import EmbeddedBroker
from codejury.core.grpc import GrpcServer, health_server, make_server
from codejury.core.settings import Settings, load_settings, with_group
from codejury.core.tls import server_credentials
from codejury.pipeline.client import SolveClient, SolveRpcError, SolveUnavailableError
from codejury.pipeline.front_door import DownSource, SolveFrontDoor
from codejury.pipeline.stage_watch import stage_watch
from codejury.proto.v1 import domain_pb2
from prometheus_client import REGISTRY

from tests.certificates import make_pki
from tests.solve_requests import published_requests

PROBLEM = domain_pb2.Problem(problem_id="p", language="python", prompt="def f():\n    ")
# short, so the tests are quick; a check's timeout is the interval: not shorter on a busy machine
INTERVAL_S = 0.1
GRACE_S = 0.5


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> float:
    """Seconds until ``condition`` held (polled); fails the test past ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not true within {timeout_s:g}s")
        time.sleep(0.01)
    return time.monotonic() - started


def stage_up_metric(stage: str) -> float | None:
    return REGISTRY.get_sample_value("codejury_stage_up", {"stage": stage})


def checks_metric(stage: str, seen: str) -> float:
    value = REGISTRY.get_sample_value(
        "codejury_stage_health_checks_total", {"stage": stage, "seen": seen}
    )
    return value or 0.0


class Stage:
    """A stage's health server on a fixed loopback port: stopped and started again."""

    def __init__(self) -> None:
        self.server: GrpcServer | None = health_server("127.0.0.1", 0)
        self.port = self.server.port
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace_s=0)
            self.server = None

    def start_again(self) -> None:
        self.server = health_server("127.0.0.1", self.port)
        self.server.start()

    def set_serving(self, serving: bool) -> None:
        assert self.server is not None
        self.server.set_serving(serving)


@pytest.fixture
def stages() -> Iterator[dict[str, Stage]]:
    running = {name: Stage() for name in ("generation", "execution")}
    yield running
    for stage in running.values():
        stage.stop()


@pytest.fixture
def settings(broker: EmbeddedBroker, stages: dict[str, Stage]) -> Settings:
    targets = ",".join(f"{name}=127.0.0.1:{s.port}" for name, s in stages.items())
    return load_settings(
        {
            "bus": {"bootstrap_servers": broker.bootstrap_servers},
            "pipeline": {
                "grpc_port": 0,
                "max_in_flight": 2,
                "completions_from": "beginning",
                "stage_health": targets,
                "stage_check_interval_s": INTERVAL_S,
                "stage_down_after_s": GRACE_S,
            },
        }
    )


@pytest.fixture
def published(settings: Settings) -> Iterator[list[str]]:
    """The request ids the front door publishes while the test runs."""
    with published_requests(settings.bus) as seen:
        yield seen


@pytest.fixture
def door(settings: Settings) -> Iterator[SolveFrontDoor]:
    with SolveFrontDoor(settings) as running:
        yield running


def solve(door: SolveFrontDoor, request_id: str) -> None:
    """One Solve; no stage answers, so one that is let in ends at its (short) deadline."""
    with SolveClient(f"127.0.0.1:{door.port}") as client:
        client.solve(PROBLEM, 1, deadline_s=0.5, request_id=request_id)


def assert_let_in(door: SolveFrontDoor, published: list[str]) -> None:
    request_id = f"let-in-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SolveRpcError, match="DEADLINE_EXCEEDED"):
        solve(door, request_id)
    wait_until(lambda: request_id in published)


def test_a_stage_not_serving_is_refused_fast_after_the_grace_and_taken_again_when_back(
    door: SolveFrontDoor, stages: dict[str, Stage], published: list[str]
) -> None:
    execution = stages["execution"]
    wait_until(lambda: stage_up_metric("execution") == 1.0)
    assert_let_in(door, published)

    execution.set_serving(False)  # a stage whose consumer loop died says so
    took = wait_until(lambda: "execution" in door.servicer.stages_down())
    assert took >= GRACE_S  # not on the first missed check
    assert stage_up_metric("execution") == 0.0 and stage_up_metric("generation") == 1.0
    assert checks_metric("execution", "not_serving") >= 2
    refused = f"refused-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with pytest.raises(
        SolveUnavailableError,
        match=rf"UNAVAILABLE: .*execution: 127\.0\.0\.1:{execution.port} NOT_SERVING, "
        r"every health check for",
    ):
        solve(door, refused)
    assert time.monotonic() - started < 2.0  # at once, not at its deadline

    execution.set_serving(True)
    wait_until(lambda: not door.servicer.stages_down())
    assert stage_up_metric("execution") == 1.0
    assert_let_in(door, published)
    assert refused not in published  # checked after a later request got through


def test_a_stage_that_is_gone_is_unreachable_and_back_when_it_answers_again(
    door: SolveFrontDoor, stages: dict[str, Stage], published: list[str]
) -> None:
    generation = stages["generation"]
    wait_until(lambda: stage_up_metric("generation") == 1.0)
    generation.stop()  # its pod restarting: nothing listens
    wait_until(lambda: "generation" in door.servicer.stages_down())
    refused = f"refused-{uuid.uuid4().hex[:8]}"
    with pytest.raises(
        SolveUnavailableError,
        match=rf"UNAVAILABLE: .*generation: 127\.0\.0\.1:{generation.port} unreachable",
    ):
        solve(door, refused)
    generation.start_again()
    wait_until(lambda: not door.servicer.stages_down())
    assert_let_in(door, published)
    assert refused not in published


def test_the_watch_and_the_supervisor_do_not_clear_each_other(
    door: SolveFrontDoor, stages: dict[str, Stage]
) -> None:
    """codejury up's supervisor restarting a stage is an outage the watch cannot end by
    seeing the stage's health server answer, nor the other way round."""
    servicer = door.servicer
    wait_until(lambda: stage_up_metric("generation") == 1.0)
    servicer.stage_down(
        "generation", "exited with code -9; restarting", source=DownSource.SUPERVISOR
    )
    serving = checks_metric("generation", "serving")
    wait_until(lambda: checks_metric("generation", "serving") >= serving + 3)
    assert servicer.stages_down() == {"generation": "exited with code -9; restarting"}
    with pytest.raises(SolveUnavailableError, match="generation: exited with code -9"):
        solve(door, f"refused-{uuid.uuid4().hex[:8]}")

    stages["generation"].set_serving(False)  # both sources now say it is down
    wait_until(lambda: "NOT_SERVING" in servicer.stages_down().get("generation", ""))
    servicer.stage_up("generation", source=DownSource.SUPERVISOR)  # restarted, says up
    assert "NOT_SERVING" in servicer.stages_down()["generation"]
    assert stage_up_metric("generation") == 0.0
    stages["generation"].set_serving(True)
    wait_until(lambda: not servicer.stages_down())
    assert stage_up_metric("generation") == 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_over_tls_the_watch_uses_the_client_credentials_or_the_plain_text_probe_port(
    tmp_path: Path,
) -> None:
    """A TLS stage is checked with this process's TLS client settings on its gRPC port, or
    in plain text on its probe port (stage_health_plaintext, what the chart sets); plain
    text against the TLS port itself finds nothing answering."""
    pki = make_pki(tmp_path / "pki")
    base = load_settings({})
    served = with_group(base, "tls", cert_file=pki.server_cert, key_file=pki.server_key)
    probe_port = _free_port()
    stage = make_server(
        [],
        host="127.0.0.1",
        port=0,
        max_workers=2,
        credentials=server_credentials(served.tls),
        probe_port=probe_port,
    )
    stage.start()
    client = with_group(base, "tls", ca_file=pki.ca)
    cases = {  # watched name: (this process's settings, address, plaintext, verdict)
        "tls": (client, f"127.0.0.1:{stage.port}", False, None),
        "probe": (client, f"127.0.0.1:{probe_port}", True, None),
        "plain": (base, f"127.0.0.1:{stage.port}", False, "unreachable"),
    }
    verdicts: dict[str, list[str | None]] = {name: [] for name in cases}
    lock = threading.Lock()

    def down(name: str, why: str) -> None:
        with lock:
            verdicts[name].append(why)

    def up(name: str) -> None:
        with lock:
            verdicts[name].append(None)

    watches = []
    try:
        for name, (own, address, plaintext, _) in cases.items():
            watching = with_group(
                own,
                "pipeline",
                stage_health=f"{name}={address}",
                stage_health_plaintext=plaintext,
                stage_check_interval_s=INTERVAL_S,
                stage_down_after_s=GRACE_S,
            )
            watch = stage_watch(watching, on_down=down, on_up=up)
            assert watch is not None
            watches.append(watch.start())
        # long enough for a failing stage to be judged down (the grace, and two checks)
        wait_until(lambda: all(len(v) >= 2 * GRACE_S / INTERVAL_S for v in verdicts.values()))
    finally:
        for watch in watches:
            watch.stop()
        stage.stop(grace_s=0)
    for name, (*_, expected) in cases.items():
        last = verdicts[name][-1]
        if expected is None:
            assert last is None, (name, last)
        else:
            assert last is not None and expected in last, (name, last)
