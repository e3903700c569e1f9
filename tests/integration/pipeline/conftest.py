"""The whole pipeline, embedded, with tiny models: one deployment per module (it takes
tens of seconds to start), its own tansu, Celery worker and service processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from codejury.bus.embedded import EmbeddedBroker, free_port_run
from codejury.core.settings import Settings, load_settings
from codejury.pipeline.embedded import EmbeddedPipeline

pytest.importorskip("transformers", reason="the pipeline's services need the demo extra")


def front_door_settings(broker: EmbeddedBroker, *, max_in_flight: int) -> Settings:
    """A front door alone on the session's broker, on any port; it reads completions from
    the topic's beginning (tansu's ListOffsets(latest) is wrong)."""
    return load_settings(
        {
            "bus": {"bootstrap_servers": broker.bootstrap_servers},
            "pipeline": {
                "grpc_port": 0,
                "max_in_flight": max_in_flight,
                "completions_from": "beginning",
            },
        }
    )


@pytest.fixture(scope="module")
def pipeline_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from codejury.generation.tiny import build_model_dir

    root = tmp_path_factory.mktemp("pipeline")
    model = build_model_dir(root / "tiny-chat-lm", context=2048)  # HumanEval prompts fit
    return load_settings(
        {
            "run_dir": root / "run",
            "generation": {
                "model": str(model),
                "max_new_tokens": 24,
                "grpc_port": 0,
                "torch_threads": 1,
            },
            "execution": {"grpc_port": 0, "warm_sandboxes": 1, "timeout_s": 5},
            "reranking": {
                "grpc_port": 0,
                "model_http_port": 0,
                "model_grpc_port": 0,
                "torch_threads": 1,
            },
            "pipeline": {"grpc_port": 0, "reranker_backbone": "tiny", "max_in_flight": 32},
            # Short retry backoffs keep the fault tests quick; the rules are the same.
            "bus": {"retry_backoff_s": 0.05, "retry_backoff_max_s": 0.5},
            # Each service process serves /metrics on the port after the last (as under
            # codejury up): base + 1 generation, + 2 execution, + 3 reranking, + 4 worker.
            "metrics": {"port": free_port_run(5)},
        }
    )


@pytest.fixture(scope="module")
def pipeline(pipeline_settings: Settings) -> Iterator[EmbeddedPipeline]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")  # the services must never reach for the hub
        with EmbeddedPipeline(pipeline_settings) as running:
            yield running
