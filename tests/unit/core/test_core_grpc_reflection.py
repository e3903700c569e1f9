"""Server reflection on CodeJury's gRPC servers, asked by a real reflection client: it
lists exactly what the server serves, resolves methods from the server alone, can be
turned off, and is not on probe-only servers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from codejury.core.grpc import GrpcServer, health_server, make_server
from prometheus_client import REGISTRY

from tests.reflection import listed_services, reflected_pool

HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


@pytest.fixture
def served() -> Iterator[GrpcServer]:
    server = make_server([], host="127.0.0.1", port=0, max_workers=4)
    server.start()
    yield server
    server.stop(grace_s=0)


def test_a_server_lists_what_it_serves_and_resolves_its_methods(served: GrpcServer) -> None:
    before = {code: _reflections_handled(code) for code in ("OK", "CANCELLED", "INTERNAL")}
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        assert listed_services(channel) == [HEALTH, REFLECTION]
        # as grpcurl does: the service by its symbol, then its method
        check = reflected_pool(channel).FindServiceByName(HEALTH).methods_by_name["Check"]
        assert check.input_type.full_name == "grpc.health.v1.HealthCheckRequest"
        assert check.output_type.fields_by_name["status"].enum_type.values_by_name["SERVING"]

    # A bidirectional stream goes through the error interceptor too, counted by its kind
    # once the server has ended it. The descriptor database drops its stream after the
    # answer, which races the end of its requests: OK or CANCELLED, never INTERNAL.
    def ended() -> float:
        return sum(_reflections_handled(code) - before[code] for code in ("OK", "CANCELLED"))

    deadline = time.monotonic() + 5
    while ended() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ended() == 2
    assert _reflections_handled("INTERNAL") == before["INTERNAL"]


def _reflections_handled(code: str) -> float:
    labels = {
        "grpc_service": REFLECTION,
        "grpc_method": "ServerReflectionInfo",
        "grpc_type": "bidi_stream",
        "grpc_code": code,
    }
    return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0


def test_reflection_off_or_on_a_probe_only_server_is_unimplemented() -> None:
    off = make_server([], host="127.0.0.1", port=0, max_workers=2, reflection=False)
    probe = health_server("127.0.0.1", 0)
    for server in (off, probe):
        server.start()
        try:
            with (
                grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
                pytest.raises(grpc.RpcError) as caught,
            ):
                listed_services(channel)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            server.stop(grace_s=0)
