"""Tiny random causal LMs with a tokenizer trained here, offline: for tests and the
pipeline benchmark (no hub download, ever).

``build_model_dir`` writes a transformers model directory (``save_pretrained``) that the
backend loads through its real loading path. The weights are random, so the text is
noise, but the mechanics (batching, stops, seeds, log-probs) are those of a real model.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_SNIPPETS = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n):\n    if n % 2 == 0:\n        return True\n    return False\n",
    "def total(values):\n    s = 0\n    for v in values:\n        s += v\n    return s\n",
    "# helper\nclass Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n",
    "long add(long x, long y) {\n    return x + y;\n}\n",
    "int main() {\n    assert(add(1, 2) == 3);\n}\n",
    "```python\ndef f(x):\n    return [i * i for i in range(x)]\n```\n",
    'def greet(name: str) -> str:\n    """Say hello."""\n    return f"hello {name}"\n',
    "import math\n\ndef area(r):\n    return math.pi * r ** 2\n",
    "print(add(2, 3))\nif __name__ == '__main__':\n    main()\n",
]
CORPUS = [snippet * 3 for snippet in _SNIPPETS] * 20  # a few KB of code


def train_tokenizer(vocab_size: int = 320):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    # Special-token roles, not secrets (the names end in "token").
    roles = {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **roles)  # type: ignore[no-untyped-call]


def build_model_dir(path: Path, *, chat: bool = True, context: int = 256, seed: int = 0) -> Path:
    """A 2-layer Llama with a ~320-token vocabulary, saved with its tokenizer at ``path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer()
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # flatter logits: more varied samples from so small a model
        model.lm_head.weight.mul_(0.1)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
