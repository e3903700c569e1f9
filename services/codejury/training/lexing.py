"""A small per-language lexer for mutation operators (pure).

It splits source text into tokens that join back to the exact text, and tells code from
what must not be mutated: string literals (with escapes, Python's triple quotes and
JavaScript's template literals), comments, and C-family preprocessor lines. It is a
token-level approximation, not a parser: regex literals and heredocs are lexed as code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal["ws", "nl", "comment", "string", "number", "ident", "op"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    line: int  # 1-based

    @property
    def is_code(self) -> bool:
        return self.kind not in ("ws", "nl", "comment")


@dataclass(frozen=True)
class LexSpec:
    """What a language's comments, strings and identifiers look like."""

    line_comments: tuple[str, ...]
    block_comments: tuple[tuple[str, str], ...] = ()
    quotes: tuple[str, ...] = ('"', "'")
    triple_quotes: bool = False  # Python's ''' and \"\"\"
    directives: bool = False  # a line starting with '#' is a preprocessor line
    ident_prefixes: str = ""  # '$' (PHP variables), '@' (Ruby instance variables)
    method_suffixes: bool = False  # Ruby: 'empty?' and 'sort!' are one identifier


_C_LIKE = LexSpec(line_comments=("//",), block_comments=(("/*", "*/"),))
SPECS: dict[str, LexSpec] = {
    "python": LexSpec(line_comments=("#",), triple_quotes=True),
    "cpp": LexSpec(line_comments=("//",), block_comments=(("/*", "*/"),), directives=True),
    "csharp": LexSpec(line_comments=("//",), block_comments=(("/*", "*/"),), directives=True),
    "java": _C_LIKE,
    "javascript": LexSpec(
        line_comments=("//",), block_comments=(("/*", "*/"),), quotes=('"', "'", "`")
    ),
    "typescript": LexSpec(
        line_comments=("//",), block_comments=(("/*", "*/"),), quotes=('"', "'", "`")
    ),
    "php": LexSpec(line_comments=("//", "#"), block_comments=(("/*", "*/"),), ident_prefixes="$"),
    "ruby": LexSpec(line_comments=("#",), ident_prefixes="@$", method_suffixes=True),
}

# Longest first, so that '<=' is one token and not '<' then '='.
_OPERATORS = sorted(
    [
        "<=>", "===", "!==", "**=", "//=", ">>=", "<<=", "...", "&&=", "||=", "??=",
        "->", "=>", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "+=", "-=", "*=", "/=",
        "%=", "&=", "|=", "^=", "<<", ">>", "::", "**", "//", "?.", "??", "..",
    ],
    key=len,
    reverse=True,
)  # fmt: skip
_NUMBER = re.compile(r"0[xXbBoO][0-9a-fA-F_]+|\d[\d_']*(?:\.\d+)?(?:[eE][+-]?\d+)?[A-Za-z]*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[?!]?")
_IDENT_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def lex(text: str, spec: LexSpec) -> list[Token]:
    """Tokens of ``text``; ``"".join(t.text for t in tokens) == text``."""
    tokens: list[Token] = []
    i, line = 0, 1
    at_line_start = True
    while i < len(text):
        kind, end = _next_token(text, i, spec, at_line_start=at_line_start)
        chunk = text[i:end]
        tokens.append(Token(kind, chunk, line))
        line += chunk.count("\n")
        at_line_start = kind == "nl" or (at_line_start and kind == "ws")
        i = end
    return tokens


def _next_token(text: str, i: int, spec: LexSpec, *, at_line_start: bool) -> tuple[TokenKind, int]:
    """The kind of the token starting at ``i`` and the index after it."""
    n, c = len(text), text[i]
    if c == "\n":
        return "nl", i + 1
    if c in " \t\r\f\v":
        end = i
        while end < n and text[end] in " \t\r\f\v":
            end += 1
        return "ws", end
    if spec.directives and at_line_start and c == "#":
        return "comment", _line_end(text, i)
    if any(text.startswith(m, i) for m in spec.line_comments):
        return "comment", _line_end(text, i)
    block = next((b for b in spec.block_comments if text.startswith(b[0], i)), None)
    if block is not None:
        close = text.find(block[1], i + len(block[0]))
        return "comment", n if close < 0 else close + len(block[1])
    if spec.triple_quotes and text.startswith(('"""', "'''"), i):
        close = text.find(text[i : i + 3], i + 3)
        return "string", n if close < 0 else close + 3
    if c in spec.quotes:
        return "string", _string_end(text, i, multiline=c == "`")
    if c.isdigit():
        match = _NUMBER.match(text, i)
        return "number", match.end() if match else i + 1
    if c in spec.ident_prefixes and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] in "_@"):
        match = _IDENT_PLAIN.match(text, i + 1 + (text[i + 1] == "@"))
        return "ident", match.end() if match else i + 1
    if c.isalpha() or c == "_":
        match = (_IDENT if spec.method_suffixes else _IDENT_PLAIN).match(text, i)
        return "ident", match.end() if match else i + 1
    op = next((o for o in _OPERATORS if text.startswith(o, i)), c)
    return "op", i + len(op)


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def _string_end(text: str, start: int, *, multiline: bool) -> int:
    """Index after the closing quote; an unterminated string ends at its line's end."""
    quote, i, n = text[start], start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i + 1
        if c == "\n" and not multiline:
            return i
        i += 1
    return n


def join(tokens: list[Token]) -> str:
    return "".join(t.text for t in tokens)
