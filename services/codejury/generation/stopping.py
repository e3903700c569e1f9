"""Where a completion ends (pure): the first stop sequence, or the end of a code block.

A ``StopRule`` is applied twice: during generation, by the backend, over the decoded
tail of each sequence (so a sequence stops as soon as it is done), and afterwards on
the whole text, to cut the completion at exactly the same place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

FENCE = "```"
_FENCE_LINE = re.compile(r"^[ \t]*```", re.MULTILINE)


def first_stop(text: str, sequences: Iterable[str]) -> int | None:
    """The index where the earliest stop sequence starts in ``text``, or None."""
    hits = [i for i in (text.find(s) for s in sequences if s) if i >= 0]
    return min(hits) if hits else None


def cut_at_stops(text: str, sequences: Iterable[str]) -> str:
    """``text`` up to (not including) its first stop sequence."""
    at = first_stop(text, sequences)
    return text if at is None else text[:at]


def closing_fence(text: str) -> int | None:
    """The index of the fence that closes the first Markdown code block, or None.

    Fences count only at the start of a line, so a chat answer that opens its block
    after a sentence ("Here it is:\\n```python") is not taken for a closed one.
    """
    fences = [m.end() - len(FENCE) for m in _FENCE_LINE.finditer(text)]
    return fences[1] if len(fences) >= 2 else None


@dataclass(frozen=True, slots=True)
class StopRule:
    """How to tell that a generated text is complete.

    ``sequences``: stop at the first of these (completion-style prompts).
    ``fenced``: stop where the first code block closes (chat prompts, whose answer is
    Markdown); the stop sequences of the language are applied after extraction instead.
    """

    sequences: tuple[str, ...] = ()
    fenced: bool = False

    def cut(self, text: str) -> int | None:
        """Where the completion ends in ``text`` (exclusive), or None while it goes on."""
        if self.fenced:
            return closing_fence(text)
        return first_stop(text, self.sequences)

    @property
    def window_chars(self) -> int | None:
        """How many trailing characters can reveal a stop; None: the rule needs the whole text."""
        if self.fenced:
            return None
        return max((len(s) for s in self.sequences), default=0)

    @property
    def trigger(self) -> str | None:
        """For rules that need the whole text: a string that must end it when the rule is met
        (so a generator can check the tail first and decode everything only then)."""
        return FENCE if self.fenced else None
