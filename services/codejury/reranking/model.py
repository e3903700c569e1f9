"""The reward model: one score per (problem prompt, candidate program) pair.

Any ``AutoModelForSequenceClassification`` with ``num_labels=1`` will do: an encoder
(all-MiniLM-L6-v2 is the CPU default) or a decoder LM with a score head. Scoring is
batched (similar lengths together) and deterministic; a lock makes one model safe to
share between server threads (the tokenizer's truncation settings are per object).

What runs a batch is a ``Forward``: the torch model in eval mode under
``torch.inference_mode`` (``TorchForward``), or ONNX Runtime on a cached export
(``codejury.reranking.onnx_runtime``), chosen by ``ScoringConfig.runtime``. Tokenizing,
truncation and batching are the same for both, so only the forward pass differs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from codejury.core.cpus import runtime_threads
from codejury.core.logging import get_logger
from codejury.reranking.errors import CorruptVersionError
from codejury.reranking.truncation import PairBudget, check_candidates_fit, length_buckets

log = get_logger(__name__)

# tokenizers report "no limit" as a huge sentinel (int(1e30)).
_UNBOUNDED = 1_000_000
_FALLBACK_MAX_LENGTH = 2048


Runtime = Literal["torch", "onnx"]
Quantize = Literal["none", "int8"]


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """How a loaded model scores: candidates per forward pass, the token limit, the runtime."""

    batch_size: int = 32
    max_length: int | None = None  # None: the backbone's own limit
    runtime: Runtime = "torch"
    quantize: Quantize = "none"  # runtime "onnx" only
    threads: int | None = None  # ONNX Runtime's intra-op threads (torch's are per process)
    export_dir: Path | None = None  # None: beside the model folder (<version>/exports)


class Forward(Protocol):
    """Runs one padded batch: tensors of kind ``tensors`` in, one score per row out."""

    name: str  # "torch", "onnx-fp32", "onnx-int8": what the logs and the bench name
    tensors: str  # the tokenizer's return_tensors for this runtime

    def __call__(self, encoded: Any) -> list[float]: ...


class TorchForward:
    """The torch model itself, in eval mode under ``torch.inference_mode``."""

    name = "torch"
    tensors = "pt"

    def __init__(self, model: Any) -> None:
        self.model = model.eval()

    def __call__(self, encoded: Any) -> list[float]:
        with torch.inference_mode():
            logits = self.model(**encoded).logits  # (B, 1)
        return [float(v) for v in logits[:, 0].tolist()]


def _backbone_limit(model_config: Any, tokenizer: Any) -> int | None:
    limits = [int(tokenizer.model_max_length)]
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(model_config, name, None)
        if isinstance(value, int):
            limits.append(value)
    bounded = [n for n in limits if n < _UNBOUNDED]
    return min(bounded) if bounded else None


class RewardModel:
    """A loaded reward model of one reranker version."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        version: str,
        config: ScoringConfig,
        forward: Forward | None = None,
    ) -> None:
        """``model``: the torch model, or only its config when ``forward`` runs another way."""
        self.version = version
        self._forward = forward or TorchForward(model)
        self._tokenizer = tokenizer
        self.batch_size = config.batch_size
        limit = _backbone_limit(getattr(model, "config", model), tokenizer)
        if config.max_length is not None and limit is not None and config.max_length > limit:
            log.warning(
                "reward_model.max_length_clamped", asked=config.max_length, backbone_limit=limit
            )
        wanted = config.max_length or limit or _FALLBACK_MAX_LENGTH
        self.budget = PairBudget(
            max_length=min(wanted, limit) if limit else wanted,
            special_tokens=tokenizer.num_special_tokens_to_add(pair=True),
        )
        self._lock = threading.Lock()

    @property
    def runtime(self) -> str:
        """What runs the forward pass: torch, onnx-fp32 or onnx-int8."""
        return self._forward.name

    @classmethod
    def load(cls, path: Path, *, version: str, config: ScoringConfig) -> RewardModel:
        """Load from a model directory; CorruptVersionError if it cannot be read.

        ``config.runtime == "onnx"`` scores with ONNX Runtime on an export of the model,
        made on the first load and reused after (``onnx_runtime.load_forward``).
        """
        try:
            model_config = AutoConfig.from_pretrained(path, local_files_only=True)
        except Exception as exc:  # OSError, ValueError (bad JSON, unknown model_type)
            raise CorruptVersionError(
                f"version {version!r}: cannot read the model config in {path} "
                f"({type(exc).__name__}: {exc}): re-register the version"
            ) from exc
        if model_config.num_labels != 1:
            raise CorruptVersionError(
                f"version {version!r}: the model in {path} has num_labels="
                f"{model_config.num_labels}; a reward model needs num_labels=1 (save it from "
                "AutoModelForSequenceClassification.from_pretrained(..., num_labels=1))"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                path, truncation_side="left", local_files_only=True
            )
        except Exception as exc:  # transformers raises OSError, ValueError
            raise CorruptVersionError(
                f"version {version!r}: cannot load the tokenizer in {path} "
                f"({type(exc).__name__}: {exc}): re-register the version"
            ) from exc
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise CorruptVersionError(
                    f"version {version!r}: the tokenizer in {path} has neither a pad nor an eos "
                    "token, so candidates cannot be batched: set tokenizer.pad_token and re-save"
                )
            tokenizer.pad_token = tokenizer.eos_token
        model_config.pad_token_id = tokenizer.pad_token_id
        if config.runtime == "onnx":
            from codejury.reranking.onnx_runtime import load_forward

            forward = load_forward(
                path,
                tokenizer,
                version=version,
                quantize=config.quantize,
                threads=config.threads,
                export_dir=config.export_dir,
            )
            return cls(model_config, tokenizer, version=version, config=config, forward=forward)
        return cls(
            load_torch_model(path, version=version, model_config=model_config),
            tokenizer,
            version=version,
            config=config,
        )

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text on its own (no special tokens)."""
        with self._lock:
            return self._count(texts)

    def _count(self, texts: Sequence[str]) -> list[int]:
        ids = self._tokenizer(list(texts), add_special_tokens=False, verbose=False)
        return [len(x) for x in ids["input_ids"]]

    def check_fits(self, completions: Sequence[str]) -> None:
        """InvalidRequestError naming each candidate too long to be scored whole."""
        check_candidates_fit(self.token_counts(completions), self.budget)

    def encode(
        self,
        prompt: str,
        completions: Sequence[str],
        lengths: Sequence[int] | None = None,
        *,
        tensors: str = "pt",
    ) -> Any:
        """The padded batch the model sees for these pairs (call under the lock).

        ``only_first`` truncation cuts the prompt alone, from the left (the tokenizer
        was loaded with ``truncation_side="left"``); the candidates were checked to fit.
        A candidate that fills the whole budget is paired with an empty prompt: none of
        the prompt is left to keep, and the tokenizer refuses to cut a sequence to nothing
        ("Sequence to truncate too short"). ``lengths``: the candidates' token counts, when
        the caller has them; ``tensors``: the tokenizer's ``return_tensors``.
        """
        counts = self._count(completions) if lengths is None else lengths
        return self._tokenizer(
            [prompt if n < self.budget.content else "" for n in counts],
            list(completions),
            truncation="only_first",
            max_length=self.budget.max_length,
            padding=True,
            return_tensors=tensors,
        )

    def score(self, prompt: str, completions: Sequence[str]) -> list[float]:
        """One score per completion, in order; higher means more likely correct."""
        if not completions:
            return []
        lengths = self.token_counts(completions)
        check_candidates_fit(lengths, self.budget)
        scores = [0.0] * len(completions)
        with self._lock:
            for batch in length_buckets(lengths, self.batch_size):
                encoded = self.encode(
                    prompt,
                    [completions[i] for i in batch],
                    [lengths[i] for i in batch],
                    tensors=self._forward.tensors,
                )
                for i, value in zip(batch, self._forward(encoded), strict=True):
                    scores[i] = value
        return scores


def load_torch_model(path: Path, *, version: str, model_config: Any, **kwargs: Any) -> Any:
    """The torch model in ``path`` (CorruptVersionError if its weights cannot be read)."""
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            path, config=model_config, local_files_only=True, **kwargs
        )
    except Exception as exc:  # transformers raises OSError, ValueError, safetensors errors
        raise CorruptVersionError(
            f"version {version!r}: cannot load the model in {path} "
            f"({type(exc).__name__}: {exc}): re-register the version"
        ) from exc


def create_from_backbone(backbone: Path, target: Path, *, seed: int = 0) -> Path:
    """Save ``backbone`` with a fresh one-output score head (seeded) into ``target``.

    The starting point of the first reranker version: the head is untrained, so its
    scores carry no signal until the first self-training iteration.
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(backbone, local_files_only=True)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(
                backbone, num_labels=1, local_files_only=True
            )
    except Exception as exc:
        raise CorruptVersionError(
            f"backbone {backbone}: cannot load it as a sequence-classification model "
            f"({type(exc).__name__}: {exc}): point at a local model directory"
        ) from exc
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def apply_torch_threads(threads: int | None) -> None:
    """Set torch's CPU threads once per process (the entry point calls it): ``threads``,
    or as many as the CPUs a quota or affinity mask leaves (``core.cpus``)."""
    chosen = runtime_threads(threads)
    if chosen is not None:
        torch.set_num_threads(chosen)
