"""Truncation rules: the candidate is kept whole, the prompt gives way from its start."""

from __future__ import annotations

import pytest
from codejury.reranking.errors import InvalidRequestError
from codejury.reranking.truncation import (
    PairBudget,
    check_candidates_fit,
    length_buckets,
    prompt_tokens_kept,
)

BUDGET = PairBudget(max_length=16, special_tokens=3)  # 13 tokens of content


def test_prompt_gives_way_to_the_candidate() -> None:
    assert prompt_tokens_kept(5, 4, BUDGET) == 5  # both fit
    assert prompt_tokens_kept(20, 4, BUDGET) == 9  # the prompt is cut to what is left
    assert prompt_tokens_kept(20, 13, BUDGET) == 0  # the candidate takes everything


def test_a_candidate_that_does_not_fit_alone_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match=r"14 tokens, over the 13"):
        prompt_tokens_kept(0, 14, BUDGET)


def test_check_names_every_oversized_candidate_and_the_fix() -> None:
    with pytest.raises(
        InvalidRequestError,
        match=r"candidates\[1\] has 14, candidates\[3\] has 99 tokens, over the 13 tokens .*"
        r"max_length 16 minus 3 special tokens.*longer context",
    ):
        check_candidates_fit([1, 14, 13, 99], BUDGET)
    check_candidates_fit([13, 0, 5], BUDGET)  # exactly full is fine


def test_length_buckets_group_similar_lengths_and_cover_every_index_once() -> None:
    lengths = [5, 50, 7, 48, 6, 49]
    buckets = length_buckets(lengths, 2)
    assert buckets == [[1, 5], [3, 2], [4, 0]]
    assert sorted(i for b in buckets for i in b) == list(range(6))
    assert length_buckets([], 4) == []
