"""The stopping criterion on its own, fed one token at a time: chat answers end where
their code block closes, and the kept tokens and log-probs match the kept text."""

from __future__ import annotations

import math

import pytest
import torch
from codejury.generation.backends import Job, Sample
from codejury.generation.backends.huggingface import _Batch, _RowWatcher
from codejury.generation.prompts import Prompt, PromptStyle
from codejury.generation.stopping import StopRule
from codejury.generation.tiny import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return train_tokenizer()


def feed(
    tokenizer, rows: list[str], rule: StopRule, max_new_tokens: int = 100
) -> tuple[list[Sample], list[list[bool]]]:  # type: ignore[no-untyped-def]
    """Run the watcher over ``rows`` (texts), one token per step, all rows in step."""
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in rows]
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id
    encoded = [ids + [pad] * (width - len(ids)) for ids in encoded]
    prompt = [7, 8, 9]
    job = Job(0, Prompt(PromptStyle.CHAT, "", (), rule), max_new_tokens)
    batch = _Batch(job, prompt, 0, len(rows), rule, max_new_tokens)
    emitted: list[Sample] = []
    watcher = _RowWatcher(
        batch, tokenizer, frozenset({tokenizer.eos_token_id}), emitted.append, lambda: False
    )
    vocab = len(tokenizer)
    done_per_step = []
    for step in range(1, width + 1):
        ids = torch.tensor([prompt + row[:step] for row in encoded])  # (B, 3 + step)
        watcher.recorder(ids, torch.zeros(len(rows), vocab))  # uniform: log 1/V per token
        done_per_step.append(watcher(ids, None).tolist())
    watcher.finish_rest()
    return sorted(emitted, key=lambda s: s.index), done_per_step


def test_a_chat_answer_stops_where_its_code_block_closes(tokenizer) -> None:  # type: ignore[no-untyped-def]
    answer = "Here:\n```python\ndef f():\n    return 1\n```\nIt returns one, always."
    plain = "x = 1\n" * 6
    (fenced, unfenced), steps = feed(tokenizer, [answer, plain], StopRule(fenced=True))
    assert fenced.finish_reason == "stop"
    assert fenced.text == "Here:\n```python\ndef f():\n    return 1\n"
    assert unfenced.finish_reason == "length" and unfenced.text == plain
    # The row was finished at the step its closing fence was complete, not later.
    closing = len(tokenizer(answer[: answer.rindex("```") + 3])["input_ids"])
    first_done = next(i for i, done in enumerate(steps) if done[0]) + 1
    assert first_done <= closing + 1
    # Tokens and log-probs count the kept text only.
    kept = tokenizer.decode(list(fenced.token_ids))
    assert kept.startswith(fenced.text) and len(kept) - len(fenced.text) < 4
    assert fenced.logprob_sum == pytest.approx(-fenced.completion_tokens * math.log(len(tokenizer)))


def test_end_of_sequence_finishes_a_row_without_the_eos_token(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "return 1<|im_end|>junk after"
    (sample,), _ = feed(tokenizer, [text], StopRule(sequences=("\ndef ",)))
    assert sample.finish_reason == "eos" and sample.text == "return 1"
    assert tokenizer.eos_token_id not in sample.token_ids


def test_a_stop_sequence_split_over_tokens_is_found_in_the_tail(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "    return a + b\nprint(add(2, 3))\n" + "z" * 80
    (sample,), _ = feed(tokenizer, [text], StopRule(sequences=("\nprint(",)))
    assert sample.finish_reason == "stop" and sample.text == "    return a + b"
    assert sample.completion_tokens < len(tokenizer(text)["input_ids"]) // 2
