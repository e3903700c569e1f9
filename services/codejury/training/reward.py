"""Reward-model training with TRL's ``RewardTrainer`` (Bradley-Terry loss), and its metrics.

The loss per pair is ``-log sigmoid(r(prompt, chosen) - r(prompt, rejected))``, with
``r`` the one-output sequence-classification head of the reranker.

Training sees exactly what serving sees: every (prompt, program) is tokenized by
``codejury.reranking.model.RewardModel.encode`` (a *pair* encoding, the prompt cut
from its start, the program kept whole, the same token limit) and handed to TRL
pre-tokenized (``chosen_ids`` / ``rejected_ids``, TRL >= 1.16), so TRL's own
``prompt + completion`` text concatenation is never used. Encoders with segment ids
(BERT, MiniLM) get them too, through the collator below. Pairs whose program alone
exceeds the model's context are dropped and counted, as serving would refuse them.

Metrics, before and after training, on the held-out problems: pairwise accuracy of
their pairs and reranked pass@1 of their candidates (with random-pick and oracle
pass@1 for scale); and pairwise accuracy on (up to 256 of) the training pairs.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codejury.core.devices import choose_device
from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.training.errors import NoPairsError, TrainingDataError, TrainingDependencyError
from codejury.training.metrics import (
    oracle_pass_at_1,
    pairwise_accuracy,
    random_pass_at_1,
    reranked_pass_at_1,
)
from codejury.training.pairs import Pair, PairSet

log = get_logger(__name__)

Progress = Callable[[int, int], None]  # (optimizer steps done, total steps)
_TRAIN_ACCURACY_SAMPLE = 256


@dataclass(frozen=True)
class RewardTrainingConfig:
    """Hyperparameters of one reward-model training run (CPU-sized defaults)."""

    epochs: float = 1.0
    batch_size: int = 8  # pairs per step: 2 * batch_size sequences per forward pass
    learning_rate: float = 2e-5
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    max_length: int | None = None  # tokens per (prompt, program); None: the backbone's
    eval_batch_size: int = 32
    logging_steps: int = 1

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RewardTrainingConfig:
        t = settings.training
        values: dict[str, Any] = {
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "learning_rate": t.learning_rate,
            "seed": t.seed,
            "device": t.device,
            "precision": t.precision,
            "max_length": settings.reranking.max_length,
            "eval_batch_size": settings.reranking.batch_size,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class RewardTrainingResult:
    model_dir: Path
    metrics: dict[str, float]
    losses: list[float] = field(default_factory=list)  # the training loss at each logged step
    dropped_too_long: int = 0


def train_reward_model(
    pairs: PairSet,
    base_model_dir: Path,
    output_dir: Path,
    config: RewardTrainingConfig,
    *,
    progress: Progress | None = None,
) -> RewardTrainingResult:
    """Train from ``base_model_dir`` on ``pairs.train``; save the model to ``output_dir``."""
    if not pairs.train:
        raise NoPairsError(
            f"no training pairs ({pairs.counts()}, {pairs.rows_without_prompt} rows without "
            f"a prompt, {pairs.refused_evaluation_rows} evaluation-only rows refused): a "
            "problem needs at least one passing and one failing candidate outside the "
            "held-out split; add data (`codejury train mutate`; an iteration seeds an "
            "empty store itself when training.cold_start_problems is above 0) or lower "
            "training.heldout_fraction"
        )
    try:
        import torch
        from datasets import Dataset  # type: ignore[import-untyped]
        from transformers import PrinterCallback, TrainerCallback
        from trl.trainer.reward_config import RewardConfig
        from trl.trainer.reward_trainer import RewardTrainer
    except ImportError as exc:
        raise TrainingDependencyError(
            f"reward-model training needs the train extra ({exc.name} is missing): "
            "pip install -e '.[train]'"
        ) from exc

    started = time.monotonic()
    device = choose_device(config.device, field="training.device")
    model, tokenizer, encoder = _load(base_model_dir, config)
    model.to(device)
    scorer = _Scorer(model, encoder, batch_size=config.eval_batch_size)
    train_sample = _sample(_distinct(pairs.train), _TRAIN_ACCURACY_SAMPLE, config.seed)
    before = _evaluate(scorer, pairs, train_sample)

    examples, dropped = _tokenized(encoder, pairs.train)
    if not examples:
        raise NoPairsError(
            f"all {len(pairs.train)} training pairs have a program longer than the model's "
            f"{encoder.budget.content} tokens: serve a backbone with a longer context"
        )
    losses: list[float] = []

    class _Watch(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            if progress is not None:
                progress(state.global_step, state.max_steps)

    bf16 = _use_bf16(config.precision, device, torch)
    with tempfile.TemporaryDirectory(prefix="codejury-reward-") as work:
        args = RewardConfig(
            output_dir=work,
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            seed=config.seed,
            data_seed=config.seed,
            bf16=bf16,
            use_cpu=device.type == "cpu",
            activation_checkpointing=False,  # small models: memory is not the limit
            max_length=None,  # programs were checked to fit when tokenized
            remove_unused_columns=False,  # keep the segment-id columns for the collator
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            logging_steps=config.logging_steps,
            dataloader_num_workers=0,
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(examples),
            processing_class=tokenizer,
            data_collator=_pair_collator(tokenizer.pad_token_id),
            callbacks=[_Watch()],
        )
        trainer.remove_callback(PrinterCallback)
        train_output = trainer.train()
    model.eval()
    after = _evaluate(scorer, pairs, train_sample)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    seconds = time.monotonic() - started
    metrics = {
        **{f"base_{k}": v for k, v in before.items()},
        **after,
        **pairs.counts(),
        "train_examples": float(len(examples)),
        "dropped_too_long": float(dropped),
        "train_loss": float(train_output.training_loss),
        "train_seconds": float(train_output.metrics.get("train_runtime", 0.0)),
        "train_pairs_per_s": float(train_output.metrics.get("train_samples_per_second", 0.0)),
        "total_seconds": seconds,
    }
    log.info("reward.trained", output=str(output_dir), **metrics)
    return RewardTrainingResult(output_dir, metrics, losses, dropped)


# -- model and tokenization ----------------------------------------------------------------


def _use_bf16(precision: str, device: Any, torch: Any) -> bool:
    if precision == "float32":
        return False
    supported = bool(device.type == "cuda" and torch.cuda.is_bf16_supported())
    if precision == "bfloat16" and not supported:
        raise TrainingDataError(
            f"training.precision 'bfloat16' on {device}: bf16 training needs a CUDA device "
            "that supports it; use auto or float32"
        )
    return supported


def _load(base_model_dir: Path, config: RewardTrainingConfig) -> tuple[Any, Any, Any]:
    """(model, tokenizer, a RewardModel around them that encodes pairs as serving does)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from codejury.reranking.model import RewardModel, ScoringConfig

    try:
        model_config = AutoConfig.from_pretrained(base_model_dir, local_files_only=True)
    except Exception as exc:  # OSError, ValueError: what transformers raises for a bad dir
        raise TrainingDataError(
            f"base model {base_model_dir}: cannot read its config ({type(exc).__name__}: "
            f"{exc}): give a registered reranker version"
        ) from exc
    if model_config.num_labels != 1:
        raise TrainingDataError(
            f"base model {base_model_dir} has num_labels={model_config.num_labels}; a reward "
            "model needs num_labels=1: start from a reranker version (`codejury reranker init`)"
        )
    tokenizer = AutoTokenizer.from_pretrained(
        base_model_dir, truncation_side="left", local_files_only=True
    )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise TrainingDataError(
                f"base model {base_model_dir}: its tokenizer has neither a pad nor an eos "
                "token: set tokenizer.pad_token and save it again"
            )
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model_dir, config=model_config, local_files_only=True
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    encoder = RewardModel(
        model,
        tokenizer,
        version="training",
        config=ScoringConfig(batch_size=config.eval_batch_size, max_length=config.max_length),
    )
    return model, tokenizer, encoder


def _tokenized(encoder: Any, pairs: Sequence[Pair]) -> tuple[list[dict[str, list[int]]], int]:
    """TRL's pre-tokenized rows (one per pair) and the number of pairs dropped as too long."""
    cache: dict[tuple[str, str], dict[str, list[int]] | None] = {}

    def encode(prompt: str, program: str) -> dict[str, list[int]] | None:
        key = (prompt, program)
        if key not in cache:
            (length,) = encoder.token_counts([program])
            if length > encoder.budget.content:
                cache[key] = None
            else:
                batch = encoder.encode(prompt, [program])  # input_ids: (1, T)
                cache[key] = {name: batch[name][0].tolist() for name in _ENCODED if name in batch}
        return cache[key]

    examples, dropped = [], 0
    for pair in pairs:
        chosen, rejected = encode(pair.prompt, pair.chosen), encode(pair.prompt, pair.rejected)
        if chosen is None or rejected is None:
            dropped += 1
            continue
        example = {"chosen_ids": chosen["input_ids"], "rejected_ids": rejected["input_ids"]}
        if "token_type_ids" in chosen:
            example["chosen_token_type_ids"] = chosen["token_type_ids"]
            example["rejected_token_type_ids"] = rejected["token_type_ids"]
        examples.append(example)
    return examples, dropped


_ENCODED = ("input_ids", "token_type_ids")


def _pair_collator(pad_token_id: int) -> Any:
    """TRL's preference collator, plus segment ids for encoders that have them."""
    import torch
    from trl.trainer.reward_trainer import DataCollatorForPreference
    from trl.trainer.utils import pad

    class PairCollator(DataCollatorForPreference):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            # input_ids, attention_mask: (2B, T), chosen rows first, then rejected
            batch: dict[str, Any] = super().torch_call(examples)
            if "chosen_token_type_ids" in examples[0]:
                segments = [torch.tensor(e["chosen_token_type_ids"]) for e in examples] + [
                    torch.tensor(e["rejected_token_type_ids"]) for e in examples
                ]
                batch["token_type_ids"] = pad(  # (2B, T), 0 where padded
                    segments,
                    padding_value=0,
                    padding_side="right",
                    pad_to_multiple_of=self.pad_to_multiple_of,
                )
            return batch

    return PairCollator(pad_token_id=pad_token_id)


# -- evaluation ------------------------------------------------------------------------------


class _Scorer:
    """Scores (prompt, programs) with the model being trained, encoded as serving does."""

    def __init__(self, model: Any, encoder: Any, *, batch_size: int) -> None:
        self._model = model
        self._encoder = encoder
        self._batch_size = batch_size

    def scores(self, prompt: str, programs: Sequence[str]) -> dict[str, float]:
        """Program -> score, for the programs that fit the model's context."""
        import torch

        fits = [
            p
            for p, n in zip(programs, self._encoder.token_counts(programs), strict=True)
            if n <= self._encoder.budget.content
        ]
        out: dict[str, float] = {}
        was_training = self._model.training
        self._model.eval()
        try:
            for start in range(0, len(fits), self._batch_size):
                chunk = fits[start : start + self._batch_size]
                batch = self._encoder.encode(prompt, chunk)  # input_ids: (B, T)
                batch = {k: v.to(self._model.device) for k, v in batch.items()}
                with torch.inference_mode():
                    logits = self._model(**batch).logits  # (B, 1)
                out.update(zip(chunk, logits[:, 0].float().tolist(), strict=True))
        finally:
            self._model.train(was_training)
        return out


def _evaluate(scorer: _Scorer, pairs: PairSet, train_sample: Sequence[Pair]) -> dict[str, float]:
    problems = []
    for problem in pairs.heldout_problems:
        scores = scorer.scores(problem.prompt, [c.program for c in problem.candidates])
        problems.append(
            [(scores[c.program], c.passed) for c in problem.candidates if c.program in scores]
        )
    metrics = {
        "heldout_pairwise_accuracy": _pair_accuracy(scorer, pairs.heldout),
        "heldout_pass_at_1": reranked_pass_at_1(problems),
        "heldout_random_pass_at_1": random_pass_at_1(problems),
        "heldout_oracle_pass_at_1": oracle_pass_at_1(problems),
        "train_pairwise_accuracy": _pair_accuracy(scorer, train_sample),
    }
    return metrics


def _pair_accuracy(scorer: _Scorer, pairs: Sequence[Pair]) -> float:
    by_prompt: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_prompt.setdefault(pair.prompt, []).append(pair)
    chosen, rejected = [], []
    for prompt, group in by_prompt.items():
        programs = list(dict.fromkeys(p for pair in group for p in (pair.chosen, pair.rejected)))
        scores = scorer.scores(prompt, programs)
        for pair in group:
            if pair.chosen in scores and pair.rejected in scores:
                chosen.append(scores[pair.chosen])
                rejected.append(scores[pair.rejected])
    return pairwise_accuracy(chosen, rejected)


def _distinct(pairs: Iterable[Pair]) -> list[Pair]:
    return list(dict.fromkeys(pairs))


def _sample(pairs: Sequence[Pair], limit: int, seed: int) -> list[Pair]:
    if len(pairs) <= limit:
        return list(pairs)
    return random.Random(seed).sample(list(pairs), limit)  # noqa: S311
