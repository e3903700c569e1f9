"""Stop rules: the first stop sequence, and the end of the first code block."""

from __future__ import annotations

from codejury.generation.stopping import StopRule, closing_fence, cut_at_stops, first_stop


def test_cut_at_the_earliest_stop_sequence_wherever_it_is_listed() -> None:
    text = "    return x\n\nif __name__:\n    main()\ndef g():"
    assert first_stop(text, ["\ndef ", "\nif "]) == text.index("\nif ")
    assert cut_at_stops(text, ["\ndef ", "\nif "]) == "    return x\n"
    assert cut_at_stops("no stop here", ["\ndef "]) == "no stop here"
    assert first_stop("x", []) is None


def test_a_block_closes_only_at_a_fence_that_starts_a_line() -> None:
    answer = "Here it is:\n```python\ndef f():\n    s = '```'\n    return 1\n```\nDone."
    at = closing_fence(answer)
    assert at is not None and answer[:at].endswith("return 1\n")
    assert closing_fence("```python\ndef f():\n    return 1\n") is None  # still open
    assert closing_fence("Sure.\n```python\n") is None


def test_rules_report_how_much_text_they_need() -> None:
    sequences = StopRule(sequences=("\n}", "\nfunction "))
    assert sequences.window_chars == len("\nfunction ") and sequences.trigger is None
    assert sequences.cut("  return 1;\n}\n") == len("  return 1;")
    fenced = StopRule(fenced=True)
    assert fenced.window_chars is None and fenced.trigger == "```"
    assert fenced.cut("```\nx = 1\n```") == len("```\nx = 1\n")
