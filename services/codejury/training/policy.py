"""The generator as a PPO policy: where its weights are, what it is prompted with, how
its samples are rewarded, and how an aligned checkpoint becomes a servable model again.

PPO must see the generator exactly as the Generation service runs it: the same prompt
(``build_prompt`` in the deployment's style, the chat template applied as the backend
applies it) and the same completion extraction, so the reward model scores the program
the service would hand to the sandbox, not the raw text.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.evaluation.datasets import BenchmarkProblem
from codejury.generation.backends.hf_loading import load_model, resolve_source
from codejury.generation.backends.huggingface import prompt_text
from codejury.generation.generator import extract_completion
from codejury.generation.languages import GenLanguage, get_language
from codejury.generation.prompts import Prompt, build_prompt, resolve_style
from codejury.reranking.model import RewardModel
from codejury.training.errors import CheckpointNotFoundError, TrainingDataError
from codejury.training.scoring import score_fitting
from codejury.training.workdir import write_result, writing_step

log = get_logger(__name__)

RewardFn = Any  # ppo.RewardFn; ppo imports torch at module level, this module does not


def base_policy_dir(settings: Settings) -> Path:
    """A transformers model directory holding the configured generator.

    A directory is used as it is; a GGUF file (the demo model is one) is loaded the way
    the Generation service loads it and saved once under
    ``<run_dir>/training/policies/`` with ``save_pretrained``, since PPO trains full
    weights and saves checkpoints the service can load back.
    """
    source = resolve_source(settings.generation)
    if source.kind == "directory" and source.gguf_file is None:
        return Path(source.location)
    if source.kind == "hub":
        raise TrainingDataError(
            f"generation.model {settings.generation.model!r} is a hub id: PPO trains a local "
            "copy, so download the model and set CODEJURY_GENERATION__MODEL to its directory"
        )
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", source.name)
    target = settings.run_dir / "training" / "policies" / f"base-{slug}"
    if (target / "result.json").is_file():
        return target
    log.info("policy.materialising", source=source.location, gguf=source.gguf_file)
    loaded = load_model(settings.generation)
    model = loaded.model
    if getattr(model, "hf_quantizer", None) is not None:
        # transformers dequantizes GGUF weights when it loads them; the quantizer left on
        # the model is a marker that only blocks save_pretrained. What is saved is the
        # float model the Generation service runs.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    with writing_step(target) as folder:
        model.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)
        write_result(folder, {"source": source.location, "gguf_file": source.gguf_file})
    return target


def check_policy_dir(path: Path, *, field: str) -> Path:
    if not (path / "config.json").is_file():
        raise CheckpointNotFoundError(
            f"{field} {path}: no transformers model there (no config.json): point it at a "
            "directory written by save_pretrained (e.g. an earlier iteration's ppo/policy)"
        )
    return path


def export_policy(checkpoint: Path, base_policy: Path, target: Path) -> None:
    """Write the policy of a PPO checkpoint to ``target`` as a complete model directory:
    the weights (LoRA adapters merged into the base), the base's tokenizer and its
    generation config."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    weights = checkpoint / "policy"
    if (weights / "adapter_config.json").is_file():
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_policy)
        merged = PeftModel.from_pretrained(base, weights).merge_and_unload()
        merged.save_pretrained(target)
    else:
        shutil.copytree(weights, target, dirs_exist_ok=True)
    AutoTokenizer.from_pretrained(base_policy).save_pretrained(target)
    if (base_policy / "generation_config.json").is_file() and not (
        target / "generation_config.json"
    ).is_file():
        shutil.copy2(base_policy / "generation_config.json", target)


@dataclass(frozen=True)
class PolicyPrompt:
    """One training problem as the policy sees it."""

    text: str  # what the policy continues (chat template applied)
    problem: BenchmarkProblem
    prompt: Prompt
    language: GenLanguage


def policy_prompts(
    tokenizer: Any, problems: Sequence[BenchmarkProblem], settings: Settings
) -> list[PolicyPrompt]:
    """The problems' prompts in the Generation service's style for this tokenizer."""
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    style = resolve_style(settings.generation.prompt_style, has_chat)
    out = []
    for p in problems:
        language = get_language(p.problem.language)
        prompt = build_prompt(p.problem, language, style)
        out.append(PolicyPrompt(prompt_text(tokenizer, prompt), p, prompt, language))
    return out


def reward_function(prompts: Sequence[PolicyPrompt], model: RewardModel) -> RewardFn:
    """``reward_fn(prompt texts, completions) -> scores`` for ``train_ppo``: the reward
    model's score of each extracted program against its problem's prompt. A program too
    long for the model gets the batch's lowest score (it could not be served either)."""
    by_text = {p.text: p for p in prompts}

    def reward_fn(texts: list[str], completions: list[str]) -> list[float]:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, text in enumerate(texts):
            groups[text].append(i)
        scores: list[float | None] = [None] * len(texts)
        for text, rows in groups.items():
            p = by_text[text]
            programs = [
                extract_completion(p.prompt, completions[i], p.problem.problem, p.language)
                for i in rows
            ]
            for i, score in zip(
                rows, score_fitting(model, p.problem.problem.prompt, programs), strict=True
            ):
                scores[i] = score
        known = [s for s in scores if s is not None]
        floor = min(known) if known else 0.0
        return [floor if s is None else s for s in scores]

    return reward_fn
