"""The reward model on a tiny random BERT: deterministic, batch-invariant, truncation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from codejury.reranking.errors import CorruptVersionError, InvalidRequestError
from codejury.reranking.model import RewardModel, ScoringConfig, create_from_backbone

PROMPT = 'def total(items):\n    """Return the sum of a list."""\n'
CANDIDATES = [
    "    return sum(items)\n",
    "    result = 0\n    for x in items:\n        result += x\n    return result\n",
    "    return 0\n",
    "    return items[0] + total(items[1:]) if items else 0\n",
    "    s = 0\n    for i in range(len(items)):\n        s = s + items[i]\n    return s\n",
]


def _load(path: Path, batch_size: int = 32, max_length: int | None = None) -> RewardModel:
    return RewardModel.load(
        path, version="v-test", config=ScoringConfig(batch_size=batch_size, max_length=max_length)
    )


def test_scores_are_deterministic_across_calls_and_loads(tiny_backbone: Path) -> None:
    model = _load(tiny_backbone)
    first = model.score(PROMPT, CANDIDATES)
    assert model.score(PROMPT, CANDIDATES) == first
    assert _load(tiny_backbone).score(PROMPT, CANDIDATES) == first
    assert len(set(first)) == len(first), "distinct candidates should score differently"


def test_batching_gives_the_same_scores_as_one_by_one(tiny_backbone: Path) -> None:
    one_by_one = [_load(tiny_backbone, 1).score(PROMPT, [c])[0] for c in CANDIDATES]
    for batch_size in (2, 3, 32):
        batched = _load(tiny_backbone, batch_size).score(PROMPT, CANDIDATES)
        # Padding changes the shapes of the matrix products, not the maths: equal up to
        # float32 rounding.
        assert batched == pytest.approx(one_by_one, abs=1e-6, rel=1e-5)


def test_the_candidate_is_kept_whole_and_the_prompt_keeps_its_end(tiny_backbone: Path) -> None:
    model = _load(tiny_backbone, max_length=48)
    long_prompt = " ".join(f"word{i}" for i in range(200)) + " def total(items):"
    candidate = "    return sum(items)"
    encoded = model.encode(long_prompt, [candidate])
    ids = encoded["input_ids"][0].tolist()
    assert len(ids) == 48
    text = model._tokenizer.decode(ids, skip_special_tokens=True)
    assert text.replace(" ", "").endswith("deftotal(items):returnsum(items)")
    assert "word0" not in text.replace(" ", "")  # the prompt's start went first
    assert model.score(long_prompt, [candidate])[0] == model.score(long_prompt, [candidate])[0]


def _ids(model: RewardModel, text: str) -> list[int]:
    ids: list[int] = model._tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def test_truncation_keeps_every_candidate_token_and_only_the_prompts_last_tokens(
    tiny_backbone: Path,
) -> None:
    """Token for token: [CLS] the prompt's last k tokens [SEP] the whole candidate [SEP],
    k being what the candidate leaves of the budget, for candidates of different lengths
    in one batch."""
    model = _load(tiny_backbone, max_length=48)
    tokenizer = model._tokenizer
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    prompt = " ".join(f"items{i}" for i in range(60)) + ' def total(items):\n    """Sum."""\n'
    prompt_ids = _ids(model, prompt)
    assert len(prompt_ids) > model.budget.content  # the prompt alone does not fit
    short, longer = CANDIDATES[0], CANDIDATES[1]
    encoded = model.encode(prompt, [short, longer])
    for row, candidate in enumerate((short, longer)):
        candidate_ids = _ids(model, candidate)
        kept = model.budget.content - len(candidate_ids)
        assert 0 < kept < len(prompt_ids)
        expected = [cls, *prompt_ids[-kept:], sep, *candidate_ids, sep]
        assert encoded["input_ids"][row].tolist()[: len(expected)] == expected
    first, second = model.score(prompt, [short, longer])
    assert model.score(prompt, [short]) == pytest.approx([first], abs=1e-6)
    assert model.score(prompt, [longer]) == pytest.approx([second], abs=1e-6)


def test_a_candidate_that_fills_the_whole_budget_is_scored_without_the_prompt(
    tiny_backbone: Path,
) -> None:
    """The boundary: a candidate of exactly the budget leaves no prompt token. It fits, so
    it is scored (with none of the prompt), beside a short one that keeps some prompt."""
    model = _load(tiny_backbone, max_length=32)
    full = " ".join(["items"] * model.budget.content)
    assert len(_ids(model, full)) == model.budget.content  # "items" is one token
    encoded = model.encode(PROMPT, [full, CANDIDATES[0]])
    tokenizer = model._tokenizer
    assert encoded["input_ids"][0].tolist() == [
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        *_ids(model, full),
        tokenizer.sep_token_id,
    ]
    scores = model.score(PROMPT, [full, CANDIDATES[0]])
    assert len(scores) == 2
    assert model.score("", [full]) == pytest.approx(scores[:1], abs=1e-6)
    with pytest.raises(InvalidRequestError, match=r"candidates\[0\] has 30 tokens, over the 29"):
        model.score(PROMPT, [full + " items"])


def test_a_candidate_longer_than_the_context_is_rejected_naming_it(tiny_backbone: Path) -> None:
    model = _load(tiny_backbone, max_length=32)
    with pytest.raises(InvalidRequestError, match=r"candidates\[1\] has \d+ tokens, over the 29"):
        model.score(PROMPT, ["    return 0", " ".join(["items"] * 40)])


def test_max_length_is_capped_by_the_backbone(tiny_backbone: Path) -> None:
    assert _load(tiny_backbone, max_length=10_000).budget.max_length == 128
    assert _load(tiny_backbone).budget.special_tokens == 3


def test_a_corrupt_model_directory_is_a_clear_error(tiny_backbone: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(tiny_backbone, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(CorruptVersionError, match=r"version 'v-test': cannot load the model"):
        _load(broken)


def test_a_model_without_a_single_output_is_refused_with_the_fix(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    wrong = shutil.copytree(tiny_backbone, tmp_path / "wrong")
    config = json.loads((wrong / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b"}
    (wrong / "config.json").write_text(json.dumps(config))
    with pytest.raises(CorruptVersionError, match=r"num_labels=2.*needs num_labels=1"):
        _load(wrong)


def test_a_backbone_gets_a_seeded_fresh_head(tiny_backbone: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    headless = tmp_path / "headless"  # a plain encoder, as a backbone is published
    AutoModelForSequenceClassification.from_pretrained(tiny_backbone).bert.save_pretrained(headless)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_backbone / name, headless / name)

    state = torch.random.get_rng_state()
    a = _load(create_from_backbone(headless, tmp_path / "a", seed=1))
    b = _load(create_from_backbone(headless, tmp_path / "b", seed=1))
    c = _load(create_from_backbone(headless, tmp_path / "c", seed=2))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert a.score(PROMPT, CANDIDATES) == b.score(PROMPT, CANDIDATES)
    assert a.score(PROMPT, CANDIDATES) != c.score(PROMPT, CANDIDATES)


def test_a_decoder_with_a_score_head_works_too(tiny_backbone: Path, tmp_path: Path) -> None:
    """The paper's setup: a causal LM with a one-output head, which scores at the last
    non-padding token; its tokenizer may lack a pad token (eos stands in)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    tokenizer.eos_token = "[SEP]"
    tokenizer.pad_token = None
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2, num_labels=1
    )
    config.pad_token_id = tokenizer.eos_token_id
    with torch.random.fork_rng():
        torch.manual_seed(0)
        GPT2ForSequenceClassification(config).save_pretrained(tmp_path / "decoder")
    tokenizer.save_pretrained(tmp_path / "decoder")

    one_by_one = [_load(tmp_path / "decoder", 1).score(PROMPT, [c])[0] for c in CANDIDATES]
    batched = _load(tmp_path / "decoder", 8).score(PROMPT, CANDIDATES)
    assert batched == pytest.approx(one_by_one, abs=1e-6, rel=1e-5)
    assert len(set(batched)) == len(batched)
