"""The reward model behind real KServe servers: v2 REST, v2 gRPC and v1 agree; loopback
only; client errors come back as client errors and the server keeps serving."""

from __future__ import annotations

import socket
from pathlib import Path

import grpc
import httpx
import pytest
from codejury.core.settings import Settings, TlsSettings
from codejury.core.tls import tls_channel_credentials
from codejury.reranking.clients import GrpcV2Scorer, RestV1Scorer, RestV2Scorer
from codejury.reranking.errors import (
    EndpointUnavailableError,
    InvalidRequestError,
    ModelServerError,
    VersionNotServedError,
)
from codejury.reranking.factory import grpc_scorer
from codejury.reranking.launcher import ModelServerProcess, ServedModel, stop_all
from codejury.reranking.model import RewardModel, ScoringConfig
from codejury.reranking.model_server import INFERENCE_SERVICE
from codejury.reranking.registry import ModelRegistry
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.certificates import make_pki

# The registry the conftest builds.
STABLE, CANARY, CORRUPT = "tiny-stable", "tiny-canary", "tiny-corrupt"

PROMPT = 'def total(items):\n    """Return the sum of a list."""\n'
CANDIDATES = [
    "    return sum(items)\n",
    "    result = 0\n    for x in items:\n        result += x\n    return result\n",
    "    return 0\n",
    "    return len(items)\n",
    "    return items[0] + total(items[1:]) if items else 0\n",
]


def _scorers(served: ServedModel) -> dict[str, GrpcV2Scorer | RestV2Scorer | RestV1Scorer]:
    return {
        "grpc-v2": GrpcV2Scorer(served.grpc_address, model_name="reranker", timeout_s=30),
        "rest-v2": RestV2Scorer(served.http_url, model_name="reranker", timeout_s=30),
        "rest-v1": RestV1Scorer(served.http_url, model_name="reranker", timeout_s=30),
    }


def test_rest_v2_grpc_v2_and_v1_return_the_same_scores_and_name_the_version(
    model_servers: dict[str, ServedModel], tiny_registry: ModelRegistry
) -> None:
    local = RewardModel.load(
        tiny_registry.model_dir(STABLE), version=STABLE, config=ScoringConfig(batch_size=8)
    ).score(PROMPT, CANDIDATES)
    for version, served in model_servers.items():
        results = {}
        for protocol, scorer in _scorers(served).items():
            try:
                results[protocol] = scorer.score(PROMPT, CANDIDATES)
            finally:
                scorer.close()
        assert {r.version for r in results.values()} == {version}
        assert results["grpc-v2"].scores == results["rest-v2"].scores == results["rest-v1"].scores
        if version == STABLE:  # the same weights in this process give the same scores
            assert list(results["grpc-v2"].scores) == pytest.approx(local, abs=1e-7)
    assert model_servers[STABLE].version == STABLE and model_servers[CANARY].version == CANARY


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                assert len(address) == width
                found.add(address)
    return found


LOOPBACK = {
    "0100007F",  # 127.0.0.1
    "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
    "00000000000000000000000001000000",  # ::1
}


def test_the_grpc_server_answers_health_and_reflection_like_every_codejury_server(
    model_servers: dict[str, ServedModel],
) -> None:
    channel = grpc.insecure_channel(model_servers[STABLE].grpc_address)
    try:
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        assert _reflected(channel) == {
            INFERENCE_SERVICE,
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
    finally:
        channel.close()


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    status: int = stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status
    return status


def _reflected(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (answer,) = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    return {s.name for s in answer.list_services_response.service}


def test_a_model_server_with_a_certificate_serves_mtls_only(
    reranking_settings: Settings, tiny_registry: ModelRegistry, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki")
    server_tls = TlsSettings(
        cert_file=pki.server_cert, key_file=pki.server_key, ca_file=pki.ca, client_auth=True
    )
    process = ModelServerProcess(
        reranking_settings.model_copy(update={"tls": server_tls}),
        STABLE,
        registry_uri=str(tiny_registry.root),
    )
    served = process.start()
    client_tls = TlsSettings(cert_file=pki.client_cert, key_file=pki.client_key, ca_file=pki.ca)
    settings = reranking_settings.model_copy(update={"tls": client_tls})
    try:
        scorer = grpc_scorer(settings, served.grpc_address, tls=True)
        try:
            scored = scorer.score(PROMPT, CANDIDATES)
        finally:
            scorer.close()
        assert scored.version == STABLE and len(scored.scores) == len(CANDIDATES)
        channel = grpc.secure_channel(served.grpc_address, tls_channel_credentials(client_tls))
        try:
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
            assert INFERENCE_SERVICE in _reflected(channel)
        finally:
            channel.close()
        # in plain text, or over TLS without a client certificate: refused
        no_certificate = TlsSettings(ca_file=pki.ca)
        for refused in (
            grpc_scorer(reranking_settings, served.grpc_address, tls=False),
            grpc_scorer(
                reranking_settings.model_copy(update={"tls": no_certificate}),
                served.grpc_address,
                tls=True,
            ),
        ):
            with pytest.raises(EndpointUnavailableError):
                refused.score(PROMPT, CANDIDATES)
            refused.close()
    finally:
        stop_all([process])


def test_both_servers_listen_on_loopback_only(model_servers: dict[str, ServedModel]) -> None:
    for served in model_servers.values():
        for port in (served.http_port, served.grpc_port):
            addresses = _listening_addresses(port)
            assert addresses, f"nothing listens on {port}"
            assert addresses <= LOOPBACK, f"port {port} listens on {addresses}"
    # And from the outside: this machine's own non-loopback address is refused.
    try:
        outside = socket.gethostbyname(socket.gethostname())
    except OSError:
        return
    if outside.startswith("127."):
        return
    with (
        pytest.raises(OSError),
        socket.create_connection((outside, model_servers[STABLE].http_port), timeout=2),
    ):
        pass


def test_bad_requests_are_client_errors_and_the_server_keeps_serving(
    model_servers: dict[str, ServedModel],
) -> None:
    served = model_servers[STABLE]
    scorers = _scorers(served)
    too_long = " ".join(["items"] * 200)  # fits the byte limits, not the 128-token context
    try:
        for protocol, scorer in scorers.items():
            with pytest.raises(InvalidRequestError, match=r"candidates\[1\] has \d+ tokens"):
                scorer.score(PROMPT, ["    return 0", too_long])
            if protocol != "rest-v1":
                with pytest.raises(InvalidRequestError, match="empty"):
                    scorer.score(PROMPT, [])
            assert len(scorer.score(PROMPT, CANDIDATES).scores) == len(CANDIDATES)
    finally:
        for scorer in scorers.values():
            scorer.close()
    wrong_name = GrpcV2Scorer(served.grpc_address, model_name="nope", timeout_s=10)
    with pytest.raises(VersionNotServedError, match="nope"):
        wrong_name.score(PROMPT, CANDIDATES)
    wrong_name.close()
    missing_input = httpx.post(
        f"{served.http_url}/v2/models/reranker/infer",
        json={"inputs": [{"name": "prompt", "shape": [1], "datatype": "BYTES", "data": ["p"]}]},
        timeout=10,
    )
    assert missing_input.status_code == 400
    assert "input 'candidates' is missing" in missing_input.json()["error"]


# Slow lane (13 s): a subprocess start per corruption; test_reranking_cli keeps a refusal.
@pytest.mark.slow
def test_a_model_server_refuses_to_start_on_a_corrupt_version_saying_why(
    reranking_settings: Settings, tiny_registry: ModelRegistry
) -> None:
    process = ModelServerProcess(reranking_settings, CORRUPT, registry_uri=str(tiny_registry.root))
    with pytest.raises(ModelServerError, match=r"exited with code 1.*cannot load the model"):
        process.start()
    unknown = ModelServerProcess(
        reranking_settings, "tiny-nope", registry_uri=str(tiny_registry.root)
    )
    with pytest.raises(ModelServerError, match=r"'tiny-nope' is not registered"):
        unknown.start()


@pytest.mark.slow  # 26 s (an export); tests/unit/reranking/test_onnx_runtime.py keeps the scores
def test_a_model_server_on_runtime_onnx_scores_as_torch_and_reuses_the_export(
    reranking_settings: Settings, tiny_registry: ModelRegistry, tmp_path: Path
) -> None:
    """runtime=onnx behind KServe: the server exports on its first load (here, into an
    export_dir of its own), a second server reuses the export, both score as torch does."""
    pytest.importorskip("onnxruntime", reason="runtime=onnx needs the serve extra")
    from codejury.core.settings import with_group
    from codejury.reranking.onnx_runtime import FP32_TOLERANCE

    onnx_settings = with_group(
        reranking_settings, "reranking", runtime="onnx", export_dir=str(tmp_path / "exports")
    )
    torch_scores = RewardModel.load(
        tiny_registry.model_dir(STABLE), version=STABLE, config=ScoringConfig(batch_size=8)
    ).score(PROMPT, CANDIDATES)
    logs = []
    for _ in range(2):
        process = ModelServerProcess(onnx_settings, STABLE, registry_uri=str(tiny_registry.root))
        try:
            served = process.start()
            scorer = GrpcV2Scorer(served.grpc_address, model_name="reranker", timeout_s=30)
            try:
                scored = scorer.score(PROMPT, CANDIDATES)
            finally:
                scorer.close()
        finally:
            process.stop()
        assert scored.version == STABLE
        assert list(scored.scores) == pytest.approx(torch_scores, abs=FP32_TOLERANCE)
        logs.append(process.log_path.read_text())
    assert "reward_model.onnx_exporting" in logs[0]
    assert "reward_model.onnx_exporting" not in logs[1]
    assert "reward_model.onnx_cached" in logs[1]
    assert (tmp_path / "exports" / STABLE / "onnx-fp32" / "model.onnx").is_file()
