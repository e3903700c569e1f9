"""What the model is shown for a problem (pure): the prompt itself, or a chat request.

Completion style hands the model the problem's code to continue; it suits base models.
Chat style asks an instruct model, through its chat template, to complete the function
in one code block; the block is extracted afterwards (``extraction``). Measured on the
demo model (ARCHITECTURE.md): completion style solves 0/40 HumanEval problems, chat
style 7.8% pass@1, so ``auto`` picks chat whenever the model has a chat template.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from codejury.generation.languages import GenLanguage
from codejury.generation.stopping import StopRule
from codejury.proto.v1 import domain_pb2


class PromptStyle(StrEnum):
    COMPLETION = "completion"
    CHAT = "chat"


def resolve_style(setting: Literal["auto", "completion", "chat"], has_chat: bool) -> PromptStyle:
    """The style to use: the setting, or for ``auto`` chat exactly when the model has one."""
    if setting == "auto":
        return PromptStyle.CHAT if has_chat else PromptStyle.COMPLETION
    return PromptStyle(setting)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """One problem as the backend sends it: ``text`` for completion, ``messages`` for chat."""

    style: PromptStyle
    text: str
    messages: tuple[ChatMessage, ...]
    stop: StopRule

    def chat_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


_CHAT_INSTRUCTION = (
    "Complete the following {language} function. Reply with the whole function, "
    "signature included, in one ```{fence} code block.\n\n```{fence}\n{code}\n```"
)

_DISPLAY = {"cpp": "C++", "csharp": "C#", "javascript": "JavaScript", "typescript": "TypeScript"}


def context_of(problem: domain_pb2.Problem) -> str:
    """The code the model sees: HumanEval-X's declaration (if any) before the prompt."""
    return problem.declaration + problem.prompt if problem.declaration else problem.prompt


def stop_sequences(problem: domain_pb2.Problem, language: GenLanguage) -> tuple[str, ...]:
    """The problem's own stop sequences, else the language's defaults."""
    return tuple(problem.stop_sequences) or language.stop_sequences


def build_prompt(problem: domain_pb2.Problem, language: GenLanguage, style: PromptStyle) -> Prompt:
    code = context_of(problem)
    if style is PromptStyle.COMPLETION:
        return Prompt(style, code, (), StopRule(sequences=stop_sequences(problem, language)))
    name = _DISPLAY.get(language.name, language.name.capitalize())
    content = _CHAT_INSTRUCTION.format(language=name, fence=language.fence, code=code.rstrip())
    return Prompt(style, code, (ChatMessage("user", content),), StopRule(fenced=True))
