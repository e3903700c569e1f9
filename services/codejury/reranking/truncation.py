"""Which tokens of a (prompt, candidate) pair the reward model sees (pure).

The candidate is what is being judged, so it is never cut: the prompt gives way first,
keeping its end (the signature and docstring right before the code). A candidate that
does not fit on its own is rejected, naming its index and the budget, rather than
scored on a part of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codejury.reranking.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class PairBudget:
    """The model's token limit per sequence and what the tokenizer adds around a pair."""

    max_length: int
    special_tokens: int

    @property
    def content(self) -> int:
        """Tokens left for the prompt and the candidate together."""
        return self.max_length - self.special_tokens


def prompt_tokens_kept(prompt_tokens: int, candidate_tokens: int, budget: PairBudget) -> int:
    """How many of the prompt's last tokens fit beside the whole candidate."""
    if candidate_tokens > budget.content:
        raise InvalidRequestError(
            f"the candidate is {candidate_tokens} tokens, over the {budget.content} the model "
            "has for it"
        )
    return min(prompt_tokens, budget.content - candidate_tokens)


def check_candidates_fit(
    candidate_tokens: Sequence[int], budget: PairBudget, *, field: str = "candidates"
) -> None:
    """InvalidRequestError naming every candidate too long to be scored whole."""
    too_long = [(i, n) for i, n in enumerate(candidate_tokens) if n > budget.content]
    if too_long:
        shown = ", ".join(f"{field}[{i}] has {n}" for i, n in too_long[:5])
        more = f" and {len(too_long) - 5} more" if len(too_long) > 5 else ""
        raise InvalidRequestError(
            f"{shown}{more} tokens, over the {budget.content} tokens the reward model has for "
            f"a candidate (max_length {budget.max_length} minus {budget.special_tokens} special "
            "tokens): shorten the candidates, or serve a backbone with a longer context"
        )


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first) to waste less padding."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
