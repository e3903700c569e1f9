"""A deployment that lives for one command takes no fixed port: it runs beside
``codejury up`` (whose ports are refused to a second server, not shared with it)."""

from __future__ import annotations

from codejury.core.settings import Settings, with_group
from codejury.pipeline.embedded import private_ports


def test_every_server_of_a_one_command_deployment_takes_a_free_port() -> None:
    settings = with_group(Settings(), "metrics", port=9464)
    private = private_ports(settings)
    ports = {
        "generation": private.generation.grpc_port,
        "execution": private.execution.grpc_port,
        "reranking": private.reranking.grpc_port,
        "reranker REST": private.reranking.model_http_port,
        "reranker gRPC": private.reranking.model_grpc_port,
        "solve": private.pipeline.grpc_port,
    }
    assert ports == dict.fromkeys(ports, 0)
    assert private.metrics.port == 9464  # a metrics port the user asked for is kept
    # everything else is the caller's
    assert private.generation.model == settings.generation.model
    assert private.bus == settings.bus and private.run_dir == settings.run_dir
    assert settings.pipeline.grpc_port == 50050  # the caller's settings are not changed
