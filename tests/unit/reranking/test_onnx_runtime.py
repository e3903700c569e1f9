"""runtime=onnx on a tiny random BERT: the same scores and picks as torch, a cached export.

Exports take seconds each, so the module shares one registry (and its fp32 export); the
tests that break an export work on a copy under their own ``export_dir``.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from codejury.reranking import onnx_runtime
from codejury.reranking.backbones import build_tiny_backbone
from codejury.reranking.errors import ExportError
from codejury.reranking.manifest import Manifest
from codejury.reranking.model import RewardModel, ScoringConfig
from codejury.reranking.onnx_runtime import FP32_TOLERANCE
from codejury.reranking.registry import ModelRegistry
from transformers import AutoModelForSequenceClassification, AutoTokenizer

pytest.importorskip("onnxruntime", reason="runtime=onnx needs the serve extra")

VERSION = "tiny-onnx"
PROBLEMS = {
    'def total(items):\n    """Return the sum of a list."""\n': [
        "    return sum(items)\n",
        "    result = 0\n    for x in items:\n        result += x\n    return result\n",
        "    return 0\n",
        "    return items[0] + total(items[1:]) if items else 0\n",
    ],
    'def is_prime(n):\n    """Check whether a number is prime."""\n': [
        "    if n < 2:\n        return False\n    return all(n % d for d in range(2, n))\n",
        "    return n > 1\n",
        "    return True\n",
    ],
    'def reverse(s):\n    """Reverse a string."""\n': [
        "    return s[::-1]\n",
        "    return s\n",
        "    return ''.join(reversed(s))\n",
        "    out = ''\n    for c in s:\n        out = c + out\n    return out\n",
        "    return s[1:]\n",
    ],
}


def _separating_head(model_dir: Path) -> None:
    """Give the score head a direction along which the candidates differ, as training does.

    A fresh head on a random backbone scores every candidate within ~1e-5 of the others:
    any rounding could flip a pick. Here the head reads the direction in which the
    candidates' pooled features vary most, so picks have margins.
    """
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    prompts = [p for p, cs in PROBLEMS.items() for _ in cs]
    candidates = [c for cs in PROBLEMS.values() for c in cs]
    with torch.inference_mode():
        batch = tokenizer(prompts, candidates, padding=True, return_tensors="pt")
        pooled = model.bert(**batch).pooler_output  # (N, H)
        mean = pooled.mean(dim=0)
        along_mean = mean / mean.norm()  # (H,)
        centred = pooled - mean
        # Read no part of the common mean: the scores then need no large cancelling bias,
        # whose float32 rounding would differ between runtimes by more than the tolerance.
        centred = centred - (centred @ along_mean)[:, None] * along_mean
        direction = torch.linalg.svd(centred, full_matrices=False).Vh[0]  # (H,)
        spread = (centred @ direction).std()
        # Scores spread 0.1: margins far above FP32_TOLERANCE, yet the head's weights small
        # enough not to magnify float32 rounding (unit spread measured 5e-5 apart).
        model.classifier.weight.copy_(0.1 * direction[None, :] / spread)
        model.classifier.bias.zero_()
    model.save_pretrained(model_dir)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("onnx")
    model_dir = build_tiny_backbone(root / "model", seed=3)
    _separating_head(model_dir)
    registry = ModelRegistry(root / "registry")
    registry.register(model_dir, Manifest(version_id=VERSION, backbone="tiny-random-bert"))
    return registry


def _load(registry: ModelRegistry, **config: object) -> RewardModel:
    return RewardModel.load(
        registry.model_dir(VERSION),
        version=VERSION,
        config=ScoringConfig(**config),  # type: ignore[arg-type]
    )


def _scores(model: RewardModel) -> dict[str, list[float]]:
    return {prompt: model.score(prompt, candidates) for prompt, candidates in PROBLEMS.items()}


def _pick(scores: list[float]) -> int:
    return max(range(len(scores)), key=lambda i: scores[i])


@pytest.fixture(scope="module")
def torch_scores(registry: ModelRegistry) -> dict[str, list[float]]:
    scores = _scores(_load(registry))
    # each problem spread well beyond the tolerances (measured 0.044-0.1 across machines)
    assert min(max(s) - min(s) for s in scores.values()) > 0.02, "the head should separate"
    return scores


@pytest.fixture(scope="module")
def fp32(registry: ModelRegistry) -> RewardModel:
    return _load(registry, runtime="onnx", batch_size=2)


def test_onnx_fp32_scores_equal_torch_and_pick_the_same(
    fp32: RewardModel, torch_scores: dict[str, list[float]]
) -> None:
    assert fp32.runtime == "onnx-fp32"
    compared = 0
    for prompt, scores in _scores(fp32).items():
        reference = torch_scores[prompt]
        assert scores == pytest.approx(reference, abs=FP32_TOLERANCE)
        top, second = sorted(reference, reverse=True)[:2]
        if top - second > 2 * FP32_TOLERANCE:  # a margin the tolerance cannot close
            assert _pick(scores) == _pick(reference)
            compared += 1
    assert compared >= 2, "the fixture should have problems with clear margins"


def test_onnx_int8_is_made_from_the_cached_fp32_export_and_scores_differently(
    fp32: RewardModel,
    registry: ModelRegistry,
    torch_scores: dict[str, list[float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """int8 is opt-in and does not keep picks on random models (see docs/reranking.md)."""

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("int8 should quantize the cached fp32 export, not export again")

    monkeypatch.setattr(onnx_runtime, "_export_fp32", no_export)
    int8 = _load(registry, runtime="onnx", quantize="int8")
    assert int8.runtime == "onnx-int8"
    entry = registry.root / "versions" / VERSION / "exports"
    assert (entry / "onnx-int8" / "model.onnx").stat().st_size < (
        entry / "onnx-fp32" / "model.onnx"
    ).stat().st_size
    for prompt, scores in _scores(int8).items():
        assert all(math.isfinite(v) for v in scores)
        assert scores != pytest.approx(torch_scores[prompt], abs=FP32_TOLERANCE)


def test_the_export_is_cached_beside_the_version_and_reused(
    fp32: RewardModel, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = registry.root / "versions" / VERSION / "exports" / "onnx-fp32"
    onnx_file = entry / "model.onnx"
    before = onnx_file.stat().st_mtime_ns
    record = json.loads((entry / "export.json").read_text())
    assert record["onnx_sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached export should be reused, not made again")

    monkeypatch.setattr(onnx_runtime, "_export_fp32", no_export)
    again = _load(registry, runtime="onnx")
    assert onnx_file.stat().st_mtime_ns == before
    assert _scores(again) == _scores(fp32)


def test_exports_leave_the_registered_version_as_it_was(
    fp32: RewardModel, registry: ModelRegistry
) -> None:
    model_dir = registry.model_dir(VERSION)
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "codejury-version",
            "codejury-manifest.json",
        ]
    )
    assert registry.get(VERSION).version_id == VERSION
    assert [m.version_id for m in registry.versions()] == [VERSION]


def _copy_exports(registry: ModelRegistry, export_dir: Path) -> Path:
    source = registry.root / "versions" / VERSION / "exports"
    shutil.copytree(source, export_dir / VERSION, ignore=shutil.ignore_patterns(".lock"))
    return export_dir / VERSION


def test_a_corrupt_export_is_made_again(
    fp32: RewardModel, registry: ModelRegistry, tmp_path: Path
) -> None:
    root = _copy_exports(registry, tmp_path)
    onnx_file = root / "onnx-fp32" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])  # truncated
    rebuilt = _load(registry, runtime="onnx", export_dir=tmp_path)
    assert onnx_file.stat().st_size > 1000
    record = json.loads((root / "onnx-fp32" / "export.json").read_text())
    assert record["onnx_sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    for prompt, scores in _scores(rebuilt).items():
        assert scores == pytest.approx(fp32.score(prompt, PROBLEMS[prompt]), abs=FP32_TOLERANCE)


def test_a_missing_export_file_is_made_again(
    fp32: RewardModel, registry: ModelRegistry, tmp_path: Path
) -> None:
    _load(registry, runtime="onnx", quantize="int8")  # the int8 export exists
    root = _copy_exports(registry, tmp_path)
    (root / "onnx-int8" / "model.onnx").unlink()
    (root / "onnx-fp32" / "export.json").write_text("{not json")
    model = _load(registry, runtime="onnx", quantize="int8", export_dir=tmp_path)
    assert (root / "onnx-int8" / "model.onnx").is_file()
    assert json.loads((root / "onnx-fp32" / "export.json").read_text())["quantize"] == "none"
    assert model.runtime == "onnx-int8"


def test_an_unwritable_export_folder_is_a_clear_error(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ExportError, match=r"cannot write ONNX exports.*reranking\.export_dir"):
        _load(registry, runtime="onnx", export_dir=blocker)
