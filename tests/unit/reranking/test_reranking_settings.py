"""The reranking settings group: defaults for the embedded mode, errors that name the fix."""

from __future__ import annotations

import pytest
from codejury.core.errors import ConfigurationError
from codejury.core.settings import load_settings
from codejury.reranking.registry import registry_uri
from codejury.reranking.requests import RankLimits


def test_defaults_are_loopback_and_a_registry_under_the_run_dir() -> None:
    settings = load_settings({"run_dir": "/srv/run"})
    rr = settings.reranking
    assert (rr.model_host, rr.grpc_host, rr.backend, rr.endpoint) == (
        "127.0.0.1",
        "127.0.0.1",
        "kserve",
        None,
    )
    assert registry_uri(settings) == "/srv/run/reranking/registry"
    limits = RankLimits.from_settings(rr)
    assert limits.max_candidate_bytes == rr.max_candidate_kb * 1024


def test_environment_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEJURY_RERANKING__CANARY_WEIGHT", "0.25")
    monkeypatch.setenv("CODEJURY_RERANKING__REGISTRY_URI", "file:///models/rerankers")
    settings = load_settings()
    assert settings.reranking.canary_weight == 0.25
    assert registry_uri(settings) == "file:///models/rerankers"
    monkeypatch.setenv("CODEJURY_RERANKING__CANARY_WEIGHT", "1.5")
    with pytest.raises(ConfigurationError, match=r"CODEJURY_RERANKING__CANARY_WEIGHT.*1\.5"):
        load_settings()


def test_the_runtime_defaults_to_torch_and_int8_needs_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    rr = load_settings().reranking
    assert (rr.runtime, rr.quantize, rr.export_dir) == ("torch", "none", None)
    monkeypatch.setenv("CODEJURY_RERANKING__QUANTIZE", "int8")
    with pytest.raises(ConfigurationError, match=r"quantize=int8 needs reranking\.runtime=onnx"):
        load_settings()
    monkeypatch.setenv("CODEJURY_RERANKING__RUNTIME", "onnx")
    assert load_settings().reranking.quantize == "int8"
