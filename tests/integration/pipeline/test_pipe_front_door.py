"""The Solve front door against a real tansu broker, with the stages played by the test:
it sees the published request and publishes the completion itself."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from codejury.bus.embedded import EmbeddedBroker
from codejury.bus.envelope import Event
from codejury.bus.producer import EventProducer
from codejury.bus.tail import TopicTail
from codejury.bus.topics import SOLVE_COMPLETED, SOLVE_REQUESTED
from codejury.core.errors import ConfigurationError
from codejury.core.settings import Settings, with_group
from codejury.core.tls import channel_credentials
from codejury.pipeline.client import (
    SolveClient,
    SolveRpcError,
    SolveUnavailableError,
    client_for,
)
from codejury.pipeline.front_door import FRONT_DOOR_MAX_MESSAGE_BYTES, SolveFrontDoor
from codejury.pipeline.requests import problem_room
from codejury.proto.v1 import domain_pb2, events_pb2, services_pb2
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from tests.certificates import make_pki
from tests.integration.pipeline.conftest import front_door_settings
from tests.reflection import listed_services, reflected_pool
from tests.solve_requests import published_requests

PROBLEM = domain_pb2.Problem(problem_id="p", language="python", prompt="def f():\n    ")
#: what the front door serves, as reflection lists it
SOLVE_SERVES = [
    "codejury.v1.Solve",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
]


@pytest.fixture
def settings(broker: EmbeddedBroker) -> Settings:
    return front_door_settings(broker, max_in_flight=1)


@pytest.fixture
def door(settings: Settings) -> Iterator[SolveFrontDoor]:
    with SolveFrontDoor(settings) as running:
        yield running


def wait_for_request(settings: Settings, request_id: str) -> events_pb2.SolveRequested:
    """The SolveRequested the front door published for ``request_id``."""
    seen = queue.Queue[events_pb2.SolveRequested]()

    def on_event(event: Event) -> None:
        payload = event.payload
        if isinstance(payload, events_pb2.SolveRequested) and payload.request_id == request_id:
            seen.put(payload)

    tail = TopicTail(settings.bus, SOLVE_REQUESTED, on_event, start="beginning", name="test")
    tail.start()
    try:
        return seen.get(timeout=30)
    finally:
        tail.stop()


def test_the_reply_is_the_completion_with_the_request_s_id(
    door: SolveFrontDoor, settings: Settings
) -> None:
    request_id = f"corr-{uuid.uuid4().hex[:8]}"
    replies = []
    with SolveClient(f"127.0.0.1:{door.port}") as client:
        caller = threading.Thread(
            target=lambda: replies.append(
                client.solve(PROBLEM, 2, deadline_s=60, request_id=request_id)
            )
        )
        caller.start()
        published = wait_for_request(settings, request_id)
        assert published.n == 2 and published.problem == PROBLEM
        # resolved before it is published: no tests, so the reward model alone picks
        assert published.selection == domain_pb2.SELECTION_RERANKER_ONLY
        candidates = [domain_pb2.Candidate(candidate_id=f"{request_id}-{i}") for i in range(2)]
        with EventProducer(settings.bus, name="test-stage") as producer:
            producer.publish(SOLVE_COMPLETED, events_pb2.SolveCompleted(request_id="stranger"))
            producer.publish(
                SOLVE_COMPLETED,
                events_pb2.SolveCompleted(
                    request_id=request_id,
                    candidates=candidates,
                    chosen_index=1,
                    reranker_version="v3",
                ),
            )
            producer.flush()
        caller.join(timeout=30)
    assert len(replies) == 1
    assert replies[0].chosen.candidate_id == f"{request_id}-1"
    assert replies[0].reranker_version == "v3"
    assert door.pending.unmatched >= 1 and door.servicer.in_flight == 0


@pytest.mark.parametrize(
    ("kind", "code"),
    [("", "FAILED_PRECONDITION"), ("unavailable", "UNAVAILABLE"), ("internal", "INTERNAL")],
)
def test_a_completion_with_an_error_fails_the_rpc_with_the_code_of_its_kind(
    door: SolveFrontDoor, settings: Settings, kind: str, code: str
) -> None:
    request_id = f"err-{uuid.uuid4().hex[:8]}"
    errors: list[SolveRpcError] = []

    def call() -> None:
        with SolveClient(f"127.0.0.1:{door.port}") as client:
            try:
                client.solve(PROBLEM, 2, deadline_s=60, request_id=request_id)
            except SolveRpcError as exc:
                errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for_request(settings, request_id)
    with EventProducer(settings.bus, name="test-stage") as producer:
        producer.publish_now(
            SOLVE_COMPLETED,
            events_pb2.SolveCompleted(
                request_id=request_id, error="candidates[0] is too long", error_kind=kind
            ),
        )
    caller.join(timeout=30)
    assert len(errors) == 1
    assert errors[0].code == code and "too long" in str(errors[0])


def test_beyond_max_in_flight_is_resource_exhausted_and_deadlines_free_the_slot(
    door: SolveFrontDoor,
) -> None:
    address = f"127.0.0.1:{door.port}"
    outcome: list[BaseException] = []

    def waiting() -> None:  # no stage runs: this one can only time out
        with SolveClient(address) as client:
            try:
                client.solve(PROBLEM, 2, deadline_s=3)
            except SolveRpcError as exc:
                outcome.append(exc)

    first = threading.Thread(target=waiting)
    first.start()
    deadline = time.monotonic() + 10
    while door.servicer.in_flight < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    with SolveClient(address) as client:
        with pytest.raises(SolveUnavailableError, match=r"RESOURCE_EXHAUSTED.*max_in_flight"):
            client.solve(PROBLEM, 2, deadline_s=3)
        first.join(timeout=30)
        assert len(outcome) == 1 and "DEADLINE_EXCEEDED" in str(outcome[0])
        assert door.servicer.in_flight == 0
        # The slot is free again; a bad request is refused with its field, and the server
        # keeps serving.
        with pytest.raises(SolveRpcError, match="INVALID_ARGUMENT: n: 0"):
            client.solve(PROBLEM, 0)
        with pytest.raises(SolveRpcError, match="DEADLINE_EXCEEDED"):
            client.solve(PROBLEM, 1, deadline_s=0.2)


def test_a_cancelled_call_frees_its_slot_at_once_not_at_its_deadline(
    door: SolveFrontDoor,
) -> None:
    from codejury.proto.v1 import services_pb2, services_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{door.port}") as channel:
        stub = services_pb2_grpc.SolveStub(channel)  # type: ignore[no-untyped-call]
        # no stage runs: without the cancellation it would hold the only slot for 120 s
        call = stub.Solve.future(
            services_pb2.SolveRequest(problem=PROBLEM, n=2, deadline_s=120), timeout=130
        )
        deadline = time.monotonic() + 10
        while door.servicer.in_flight < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert door.servicer.in_flight == 1
        call.cancel()
        deadline = time.monotonic() + 5
        while door.servicer.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert door.servicer.in_flight == 0
    # the slot is taken by the next request instead of refusing it (RESOURCE_EXHAUSTED)
    with (
        SolveClient(f"127.0.0.1:{door.port}") as client,
        pytest.raises(SolveRpcError, match="DEADLINE_EXCEEDED"),
    ):
        client.solve(PROBLEM, 1, deadline_s=0.5)


def test_with_tokens_only_a_right_bearer_token_reaches_kafka(
    settings: Settings, tmp_path: Path
) -> None:
    """No token or a wrong one: UNAUTHENTICATED, with how to send one, and nothing is
    published. The right one (from the setting or the Secret file): the request is
    published. Health checks need no token (probes carry none)."""
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("from-the-file\n\n")
    guarded = with_group(
        settings,
        "pipeline",
        auth_tokens=SecretStr("s3cret-one, s3cret-two"),
        auth_tokens_file=tokens_file,
    )
    with published_requests(settings.bus) as published:
        with SolveFrontDoor(guarded) as door:
            address = f"127.0.0.1:{door.port}"
            for token, why in ((None, "no bearer token"), ("s3cret", "not accepted")):
                with (
                    SolveClient(address, token=token) as client,
                    pytest.raises(SolveRpcError, match=f"UNAUTHENTICATED: .*{why}.*Bearer"),
                ):
                    client.solve(PROBLEM, 2, deadline_s=2, request_id=f"refused-{token}")
            for i, token in enumerate(("s3cret-two", "from-the-file")):
                with (
                    SolveClient(address, token=token) as client,
                    pytest.raises(SolveRpcError, match="DEADLINE_EXCEEDED"),  # no stage runs
                ):
                    client.solve(PROBLEM, 2, deadline_s=1, request_id=f"let-in-{i}")
            with grpc.insecure_channel(address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
        time.sleep(1.0)  # what the tail would still see
    # (the broker is the session's: other tests' requests are on the topic too)
    assert not [r for r in published if r.startswith("refused-")]
    assert {"let-in-0", "let-in-1"} <= set(published)


def test_an_unreadable_tokens_file_is_one_clear_error(settings: Settings, tmp_path: Path) -> None:
    missing = with_group(settings, "pipeline", auth_tokens_file=tmp_path / "nope")
    with pytest.raises(ConfigurationError, match=r"auth_tokens_file=.*nope: cannot be read"):
        SolveFrontDoor(missing)


def _tls(settings: Settings, **fields: Any) -> Settings:
    return with_group(settings, "tls", **fields)


def test_tls_and_mtls_round_trips(settings: Settings, tmp_path: Path) -> None:
    """The front door (as every CodeJury gRPC server) speaks TLS only once it has a
    certificate, and with client_auth only to clients whose certificate its CA signed."""
    pki = make_pki(tmp_path / "pki")
    server = _tls(settings, cert_file=pki.server_cert, key_file=pki.server_key)
    trusting = _tls(settings, ca_file=pki.ca)
    with SolveFrontDoor(server) as door:
        address = f"127.0.0.1:{door.port}"
        with (
            client_for(address, trusting) as client,
            pytest.raises(SolveRpcError, match="DEADLINE_EXCEEDED"),  # in: no stage runs
        ):
            client.solve(PROBLEM, 2, deadline_s=1)
        with (
            SolveClient(address, connect_timeout_s=2) as plain,
            pytest.raises(SolveUnavailableError, match="speaks TLS only"),
        ):
            plain.solve(PROBLEM, 2, deadline_s=1)
    mutual = _tls(server, ca_file=pki.ca, client_auth=True)
    with SolveFrontDoor(mutual) as door:
        address = f"127.0.0.1:{door.port}"
        without = SolveClient(
            address, connect_timeout_s=2, credentials=channel_credentials(trusting.tls)
        )
        with without, pytest.raises(SolveUnavailableError, match="does not trust"):
            without.solve(PROBLEM, 2, deadline_s=1)
        holder = _tls(trusting, cert_file=pki.client_cert, key_file=pki.client_key)
        with (
            client_for(address, holder) as client,
            pytest.raises(SolveRpcError, match="DEADLINE_EXCEEDED"),
        ):
            client.solve(PROBLEM, 2, deadline_s=1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_tls_server_answers_plain_text_probes_on_its_probe_port_and_nothing_else(
    settings: Settings, tmp_path: Path
) -> None:
    """kubelet's gRPC probes cannot speak TLS: tls.probe_port serves the TLS server's own
    health in plain text, and only that; it closes with the server."""
    pki = make_pki(tmp_path / "pki")
    probe_port = _free_port()
    server = _tls(
        settings, cert_file=pki.server_cert, key_file=pki.server_key, probe_port=probe_port
    )
    with (
        SolveFrontDoor(server) as door,
        grpc.insecure_channel(f"127.0.0.1:{probe_port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        door.grpc.set_serving(False)  # the TLS server's status, shared
        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        door.grpc.set_serving(True)
        # the probe port serves health alone: neither Solve nor reflection is there
        solve = channel.unary_unary("/codejury.v1.Solve/Solve")
        with pytest.raises(grpc.RpcError) as caught:
            solve(b"", timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError) as caught:
            listed_services(channel)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # the TLS port offers reflection, to a client that speaks TLS
        trusting = channel_credentials(_tls(settings, ca_file=pki.ca).tls)
        with grpc.secure_channel(f"127.0.0.1:{door.port}", trusting) as tls_channel:
            assert listed_services(tls_channel) == SOLVE_SERVES
    with (
        grpc.insecure_channel(f"127.0.0.1:{probe_port}") as channel,
        pytest.raises(grpc.RpcError),
    ):
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"cert_file": Path("server.pem")}, r"tls\.key_file is unset while its pair is set"),
        ({"client_auth": True}, r"tls\.client_auth needs the server's own certificate"),
        (
            {"cert_file": Path("nope.pem"), "key_file": Path("nope-key.pem")},
            r"tls\.key_file=.*cannot be read",
        ),
    ],
)
def test_half_configured_tls_is_one_clear_error(
    settings: Settings, tmp_path: Path, fields: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        SolveFrontDoor(_tls(settings, **fields))


_BIG = 2 << 20  # 2 MiB: what a caller tried, twice a Kafka record


def _largest_accepted(n: int, settings: Settings) -> domain_pb2.Problem:
    """A problem of exactly the size the front door accepts with ``n`` candidates of the
    default length, most of it tests."""
    room = problem_room(n, settings.generation.max_new_tokens)
    problem = domain_pb2.Problem(language="python", prompt="def f():\n    ")
    problem.tests = "#" * (room - problem.ByteSize() - 4)  # its tag and a 3-byte length
    assert problem.ByteSize() == room
    return problem


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        (
            "problem.tests",
            domain_pb2.Problem(language="python", prompt="def f():\n", tests="#" * _BIG),
        ),
        # the other fields take the same path (a unit test checks each limit): ~4 s each
        pytest.param(
            "problem.prompt",
            domain_pb2.Problem(language="python", prompt="#" * _BIG),
            marks=pytest.mark.slow,
        ),
        pytest.param(
            "problem.declaration",
            domain_pb2.Problem(language="python", prompt="def f():\n", declaration="#" * _BIG),
            marks=pytest.mark.slow,
        ),
    ],
)
def test_an_oversized_field_is_refused_up_front_naming_it_and_nothing_is_published(
    door: SolveFrontDoor, settings: Settings, field: str, problem: domain_pb2.Problem
) -> None:
    """2 MiB of tests used to reach the producer and come back FAILED_PRECONDITION (the
    record would not fit Kafka); now the front door refuses it before anything is sent.
    The largest problem it accepts is published: the limit is Kafka's, not a guess below."""
    refused = f"oversized-{uuid.uuid4().hex[:8]}"
    largest = f"largest-{uuid.uuid4().hex[:8]}"
    with published_requests(settings.bus) as published:
        with SolveClient(f"127.0.0.1:{door.port}") as client:
            with pytest.raises(SolveRpcError) as caught:
                client.solve(problem, 1, deadline_s=30, request_id=refused)
            assert caught.value.code == "INVALID_ARGUMENT", caught.value
            assert f"INVALID_ARGUMENT: {field}: " in str(caught.value)
            with pytest.raises(SolveRpcError, match="DEADLINE_EXCEEDED"):  # no stage runs
                client.solve(_largest_accepted(1, settings), 1, deadline_s=2, request_id=largest)
        deadline = time.monotonic() + 30
        while largest not in published and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # what the tail would still see from the other partitions
    assert largest in published
    assert refused not in published


def test_a_request_over_the_wire_limit_is_refused_before_it_is_read_whole(
    door: SolveFrontDoor, settings: Settings
) -> None:
    """The front door reads at most FRONT_DOOR_MAX_MESSAGE_BYTES of a request (it had the
    stages' 64 MiB): a bigger one is refused by gRPC itself, nothing is published, and the
    next request is served as usual."""
    huge = f"huge-{uuid.uuid4().hex[:8]}"
    problem = domain_pb2.Problem(
        language="python", prompt="def f():\n", tests="#" * (FRONT_DOOR_MAX_MESSAGE_BYTES + 1)
    )
    with published_requests(settings.bus) as published:
        with SolveClient(f"127.0.0.1:{door.port}") as client:
            with pytest.raises(SolveRpcError) as caught:
                client.solve(problem, 1, deadline_s=30, request_id=huge)
            assert caught.value.code == "RESOURCE_EXHAUSTED", caught.value
            assert not isinstance(caught.value, SolveUnavailableError)  # no retry helps
            with pytest.raises(SolveRpcError) as again:  # still serving: the next is read
                client.solve(
                    domain_pb2.Problem(language="python", prompt="x" * _BIG), 1, deadline_s=30
                )
            assert again.value.code == "INVALID_ARGUMENT"
        time.sleep(1.0)  # what the tail would still see
    assert huge not in published


def test_reflection_lists_what_the_front_door_serves_and_resolves_solve_from_it(
    door: SolveFrontDoor,
) -> None:
    """What grpcurl does: list the services, then resolve Solve's method and request type
    by symbol from the server alone; what it resolves is the contract the stubs were made
    from, dependencies (domain.proto) included."""
    with grpc.insecure_channel(f"127.0.0.1:{door.port}") as channel:
        assert listed_services(channel) == SOLVE_SERVES
        pool = reflected_pool(channel)
        solve = pool.FindServiceByName("codejury.v1.Solve").methods_by_name["Solve"]
        assert solve.input_type.full_name == "codejury.v1.SolveRequest"
        assert solve.output_type.full_name == "codejury.v1.SolveResponse"
        request = pool.FindMessageTypeByName("codejury.v1.SolveRequest")
        assert request.fields_by_name["problem"].message_type.fields_by_name["tests"]
        for local in (services_pb2.DESCRIPTOR, domain_pb2.DESCRIPTOR):
            reflected = descriptor_pb2.FileDescriptorProto()
            pool.FindFileByName(local.name).CopyToProto(reflected)
            assert reflected == descriptor_pb2.FileDescriptorProto.FromString(local.serialized_pb)


def test_behind_tokens_reflection_needs_one_and_off_it_is_not_served(settings: Settings) -> None:
    guarded = with_group(settings, "pipeline", auth_tokens=SecretStr("s3cret"))
    with (
        SolveFrontDoor(guarded) as door,
        grpc.insecure_channel(f"127.0.0.1:{door.port}") as channel,
    ):
        with pytest.raises(grpc.RpcError) as caught:
            listed_services(channel)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "no bearer token" in str(caught.value.details())
        bearer = [("authorization", "Bearer s3cret")]
        assert listed_services(channel, metadata=bearer) == SOLVE_SERVES
    off = with_group(settings, "grpc", reflection=False)
    with SolveFrontDoor(off) as door, grpc.insecure_channel(f"127.0.0.1:{door.port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            listed_services(channel)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
