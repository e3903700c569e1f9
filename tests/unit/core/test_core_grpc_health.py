"""Every CodeJury gRPC server answers grpc.health.v1: what Kubernetes' grpc probes ask."""

from __future__ import annotations

import threading

import grpc
import pytest
from codejury.core.errors import CodeJuryError
from codejury.core.grpc import make_server
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_a_started_server_is_serving_and_a_watcher_hears_the_stop() -> None:
    served = make_server([], host="127.0.0.1", port=0, max_workers=4)
    served.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{served.port}")
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        check = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert check.status == SERVING
        # An unknown service is NOT_FOUND, not SERVING: a probe naming a service this
        # server does not run must fail.
        try:
            stub.Check(health_pb2.HealthCheckRequest(service="nosuch"), timeout=5)
            raise AssertionError("an unknown service answered")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND

        heard: list[int] = []
        first = threading.Event()

        def watch() -> None:
            try:
                for response in stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10):
                    heard.append(response.status)
                    first.set()
            except grpc.RpcError:
                pass  # the server closes the stream when the grace period ends

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert first.wait(5)
        served.stop(grace_s=1)
        watcher.join(10)
        assert heard == [SERVING, NOT_SERVING]
    finally:
        channel.close()


def test_a_port_another_server_listens_on_is_refused_not_shared() -> None:
    # gRPC's default SO_REUSEPORT let a second deployment bind the first one's ports and
    # take a share of its connections; the second server must fail instead, saying why.
    first = make_server([], host="127.0.0.1", port=0, max_workers=2)
    first.start()
    try:
        with pytest.raises(
            CodeJuryError, match=rf"cannot listen on 127\.0\.0\.1:{first.port}.*in use"
        ):
            make_server([], host="127.0.0.1", port=first.port, max_workers=2)
    finally:
        first.stop(grace_s=0)
