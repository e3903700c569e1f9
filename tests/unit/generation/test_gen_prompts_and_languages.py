"""Prompts per style, and the generator's language table against the registry."""

from __future__ import annotations

import pytest
from codejury.generation.languages import LANGUAGES, get_language
from codejury.generation.prompts import PromptStyle, build_prompt, resolve_style
from codejury.proto.v1 import domain_pb2

PROBLEM = domain_pb2.Problem(
    problem_id="p",
    language="cpp",
    prompt="long add(long x, long y) {\n",
    declaration="#include <x>\n",
)


def test_auto_is_chat_exactly_when_the_model_has_a_chat_template() -> None:
    assert resolve_style("auto", has_chat=True) is PromptStyle.CHAT
    assert resolve_style("auto", has_chat=False) is PromptStyle.COMPLETION
    assert resolve_style("completion", has_chat=True) is PromptStyle.COMPLETION
    assert resolve_style("chat", has_chat=False) is PromptStyle.CHAT


def test_completion_prompts_continue_the_code_and_stop_at_the_language_stops() -> None:
    prompt = build_prompt(PROBLEM, get_language("cpp"), PromptStyle.COMPLETION)
    assert prompt.text == "#include <x>\nlong add(long x, long y) {\n"  # declaration first
    assert prompt.messages == () and prompt.stop.sequences == ("\n}",)
    own = domain_pb2.Problem(language="cpp", prompt="x", stop_sequences=["\nint main"])
    assert build_prompt(own, get_language("cpp"), PromptStyle.COMPLETION).stop.sequences == (
        "\nint main",
    )


def test_chat_prompts_ask_for_one_fenced_block_and_stop_where_it_closes() -> None:
    prompt = build_prompt(PROBLEM, get_language("cpp"), PromptStyle.CHAT)
    (message,) = prompt.chat_dicts()
    assert message["role"] == "user"
    assert "Complete the following C++ function" in message["content"]
    assert "```cpp\n#include <x>\nlong add(long x, long y) {\n```" in message["content"]
    assert prompt.stop.fenced and prompt.stop.sequences == ()


def test_the_stop_sequences_are_the_execution_registrys() -> None:
    registry = pytest.importorskip("codejury.execution.languages")
    assert set(LANGUAGES) == set(registry.LANGUAGES)
    for name, language in registry.LANGUAGES.items():
        mine = LANGUAGES[name]
        assert mine.stop_sequences == tuple(language.stop_sequences), name
        assert set(mine.aliases) == set(language.aliases), name


def test_every_alias_resolves() -> None:
    for language in LANGUAGES.values():
        for alias in (language.name, *language.aliases):
            assert get_language(alias.upper()).name == language.name
