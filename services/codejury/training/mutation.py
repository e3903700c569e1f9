"""Mutation operators on source text, per language (pure): cold-start negatives.

A mutant differs from the program at one site, made by one operator:

- ``comparison``: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=`` (``===`` <-> ``!==``);
  C++/Java/C#/TypeScript generic brackets (``vector<int>``) are left alone;
- ``arithmetic``: ``+`` <-> ``-``, ``*`` <-> ``/`` (binary uses only), ``++`` <-> ``--``,
  compound assignments, Python's ``//`` -> ``/`` and ``**`` -> ``*``;
- ``constant``: an integer literal ``n`` -> ``n + 1`` or ``n - 1``;
- ``negate``: a statement's condition negated (``if (c)`` -> ``if (!(c))``, Python
  ``if c:`` -> ``if not (c):``, Ruby ``if`` <-> ``unless``, ``while`` <-> ``until``);
- ``logical``: ``&&`` <-> ``||``, ``and`` <-> ``or``, ``true`` <-> ``false``;
- ``drop_statement``: one simple statement line removed (never a block's only statement
  in Python, never a line that opens or closes a block);
- ``swap_arguments``: two adjacent, different arguments of a call swapped.

Strings, comments and preprocessor lines are never touched (see ``lexing``).
``mutate`` draws sites with the given random generator, round-robin over operators so
that one kind does not crowd out the others, and yields distinct mutants.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from codejury.training.errors import UnsupportedLanguageError
from codejury.training.lexing import SPECS, Token, lex

SUPPORTED_LANGUAGES = tuple(sorted(SPECS))
_GENERIC_LANGUAGES = frozenset({"cpp", "java", "csharp", "typescript"})
_C_LIKE = frozenset({"cpp", "java", "csharp", "javascript", "typescript", "php"})

_COMPARISON = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
_STRICT_COMPARISON = {"===": "!==", "!==": "==="}
_ARITHMETIC = {"+": "-", "-": "+", "++": "--", "--": "++", "+=": "-=", "-=": "+="}
_MULTIPLICATIVE = {"*": "/", "/": "*", "*=": "/=", "/=": "*="}
_PYTHON_ARITHMETIC = {"//": "/", "**": "*", "//=": "/="}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LOGICAL_OPS = {"&&": "||", "||": "&&"}
_LOGICAL_WORDS = {
    "python": {"and": "or", "or": "and", "True": "False", "False": "True"},
    "ruby": {"and": "or", "or": "and", "true": "false", "false": "true"},
}
_BOOLEANS = {"true": "false", "false": "true"}
_KEYWORDS = _words(
    "if elif else while for foreach return switch case catch sizeof typeof not and or "
    "in is lambda def function fn new delete throw yield await unless until elsif do "
    "then end echo print puts use using import from class struct typename template"
)
_TYPE_WORDS = _words(
    "int long short char float double bool boolean void auto var let const unsigned "
    "signed string String size_t"
)
_PY_BLOCK = _words("def class if elif else for while try except finally with async match case")
_RUBY_BLOCK = _words(
    "def end if unless else elsif while until for do begin rescue ensure case when "
    "class module return"
)
_GENERIC_INNER = frozenset({",", "::", ".", "*", "&", "[", "]", "?", "<", ">", ">>"})


@dataclass(frozen=True, slots=True)
class Site:
    """Replace tokens[start:end] by ``text``."""

    operator: str
    start: int
    end: int
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Mutant:
    program: str
    operator: str
    line: int

    @property
    def detail(self) -> str:
        return f"{self.operator}@{self.line}"


def language_name(language: str) -> str:
    """The registry name of ``language`` if the operators cover it."""
    try:
        from codejury.execution.languages import get_language

        name = get_language(language).name
    except Exception:  # an unknown alias: report it below with the supported list
        name = language.strip().lower()
    if name not in SPECS:
        raise UnsupportedLanguageError(
            f"language {language!r} has no mutation operators: use one of "
            f"{', '.join(SUPPORTED_LANGUAGES)}"
        )
    return name


def sites(program: str, language: str) -> list[Site]:
    """Every single-site mutation of ``program``, in text order per operator."""
    name = language_name(language)
    tokens = lex(program, SPECS[name])
    code = [i for i, t in enumerate(tokens) if t.is_code]
    ctx = _Context(name, tokens, code)
    found: list[Site] = []
    for operator in _OPERATORS:
        found.extend(operator(ctx))
    return found


def apply(program: str, language: str, site: Site) -> str:
    tokens = lex(program, SPECS[language_name(language)])
    return _apply(tokens, site)


def mutate(program: str, language: str, rng: random.Random, k: int) -> Iterator[Mutant]:
    """Up to ``k`` distinct mutants of ``program``, each different from it."""
    name = language_name(language)
    tokens = lex(program, SPECS[name])
    by_operator: dict[str, list[Site]] = {}
    for site in sites(program, name):
        by_operator.setdefault(site.operator, []).append(site)
    queues = list(by_operator.values())
    for queue in queues:
        rng.shuffle(queue)
    rng.shuffle(queues)
    seen = {program}
    made = 0
    while made < k and any(queues):
        for queue in queues:
            if not queue or made >= k:
                continue
            site = queue.pop()
            text = _apply(tokens, site)
            if text in seen:
                continue
            seen.add(text)
            made += 1
            yield Mutant(text, site.operator, site.line)


def _apply(tokens: list[Token], site: Site) -> str:
    return (
        "".join(t.text for t in tokens[: site.start])
        + site.text
        + "".join(t.text for t in tokens[site.end :])
    )


# -- the operators ------------------------------------------------------------------------


class _Context:
    def __init__(self, language: str, tokens: list[Token], code: list[int]) -> None:
        self.language = language
        self.tokens = tokens
        self.code = code  # indices of code tokens, in order
        self.position = {index: n for n, index in enumerate(code)}
        self.generic = _generic_brackets(tokens, code) if language in _GENERIC_LANGUAGES else set()

    def prev(self, index: int) -> Token | None:
        n = self.position[index]
        return self.tokens[self.code[n - 1]] if n > 0 else None

    def next(self, index: int) -> Token | None:
        n = self.position[index]
        return self.tokens[self.code[n + 1]] if n + 1 < len(self.code) else None

    def matching(self, index: int) -> int | None:
        """Index of the bracket closing the one at ``index``."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        opener = self.tokens[index].text
        depth = 0
        for i in self.code[self.position[index] :]:
            text = self.tokens[i].text
            if text == opener:
                depth += 1
            elif text == pairs[opener]:
                depth -= 1
                if depth == 0:
                    return i
        return None

    def text(self, start: int, end: int) -> str:
        return "".join(t.text for t in self.tokens[start:end])


def _is_value(token: Token | None) -> bool:
    if token is None:
        return False
    if token.kind in ("number", "string"):
        return True
    if token.kind == "ident":
        return token.text not in _KEYWORDS and token.text not in _TYPE_WORDS
    return token.text in (")", "]")


def _generic_brackets(tokens: list[Token], code: list[int]) -> set[int]:
    """Indices of '<' / '>' / '>>' that bracket type arguments, e.g. ``vector<int>``."""
    marked: set[int] = set()
    for n, i in enumerate(code):
        if tokens[i].text != "<" or n == 0 or tokens[code[n - 1]].kind != "ident":
            continue
        depth, span = 0, []
        for j in code[n:]:
            token = tokens[j]
            if token.line != tokens[i].line:
                break
            if token.text == "<":
                depth += 1
            elif token.text in (">", ">>"):
                depth -= 2 if token.text == ">>" else 1
            elif token.kind != "ident" and token.text not in _GENERIC_INNER:
                break
            span.append(j)
            if depth <= 0:
                marked.update(k for k in span if tokens[k].text in ("<", ">", ">>"))
                break
    return marked


def _swap_ops(ctx: _Context, operator: str, table: dict[str, str], *, binary: bool) -> list[Site]:
    out = []
    for i in ctx.code:
        token = ctx.tokens[i]
        if token.kind != "op" or token.text not in table or i in ctx.generic:
            continue
        if binary and not (_is_value(ctx.prev(i)) and _is_value_start(ctx.next(i))):
            continue
        out.append(Site(operator, i, i + 1, table[token.text], token.line))
    return out


def _is_value_start(token: Token | None) -> bool:
    return token is not None and (_is_value(token) or token.text in ("(", "[", "-", "!"))


def _comparison(ctx: _Context) -> list[Site]:
    table = dict(_COMPARISON)
    if ctx.language in ("javascript", "typescript", "php"):
        table.update(_STRICT_COMPARISON)
    return _swap_ops(ctx, "comparison", table, binary=False)


def _arithmetic(ctx: _Context) -> list[Site]:
    found = _swap_ops(ctx, "arithmetic", _ARITHMETIC, binary=False)
    found += _swap_ops(ctx, "arithmetic", _MULTIPLICATIVE, binary=True)
    if ctx.language == "python":
        found += _swap_ops(ctx, "arithmetic", _PYTHON_ARITHMETIC, binary=True)
    return sorted(found, key=lambda s: s.start)


def _constant(ctx: _Context) -> list[Site]:
    out = []
    for i in ctx.code:
        token = ctx.tokens[i]
        digits = token.text.rstrip("lLuU")
        if token.kind != "number" or not digits.isdigit():
            continue
        suffix = token.text[len(digits) :]
        value = int(digits)
        out.append(Site("constant", i, i + 1, f"{value + 1}{suffix}", token.line))
        if value > 0:
            out.append(Site("constant", i, i + 1, f"{value - 1}{suffix}", token.line))
    return out


def _negate(ctx: _Context) -> list[Site]:
    if ctx.language == "python":
        return _negate_python(ctx)
    if ctx.language == "ruby":
        swap = {"if": "unless", "unless": "if", "while": "until", "until": "while"}
        return [
            Site("negate", i, i + 1, swap[ctx.tokens[i].text], ctx.tokens[i].line)
            for i in ctx.code
            if ctx.tokens[i].kind == "ident" and ctx.tokens[i].text in swap
        ]
    out = []
    for i in ctx.code:
        token = ctx.tokens[i]
        following = ctx.next(i)
        if token.text not in ("if", "while") or following is None or following.text != "(":
            continue
        open_at = ctx.code[ctx.position[i] + 1]
        close_at = ctx.matching(open_at)
        if close_at is None:
            continue
        inner = ctx.text(open_at + 1, close_at)
        out.append(Site("negate", open_at, close_at + 1, f"(!({inner}))", token.line))
    return out


def _negate_python(ctx: _Context) -> list[Site]:
    out = []
    for start, end in _lines(ctx):
        first = ctx.tokens[start]
        if first.text not in ("if", "elif", "while"):
            continue
        depth, colon = 0, None
        for i in range(start + 1, end):
            text = ctx.tokens[i].text
            if ctx.tokens[i].kind == "op":
                depth += text in "([{" and len(text) == 1
                depth -= text in ")]}" and len(text) == 1
                if text == ":" and depth == 0:
                    colon = i
        if colon is None:
            continue
        cond_start = next(i for i in range(start + 1, colon) if ctx.tokens[i].is_code)
        cond_end = max(i for i in range(cond_start, colon) if ctx.tokens[i].is_code) + 1
        inner = ctx.text(cond_start, cond_end)
        out.append(Site("negate", cond_start, cond_end, f"not ({inner})", first.line))
    return out


def _logical(ctx: _Context) -> list[Site]:
    words = _LOGICAL_WORDS.get(ctx.language, _BOOLEANS)
    out = _swap_ops(ctx, "logical", _LOGICAL_OPS, binary=False)
    out += [
        Site("logical", i, i + 1, words[ctx.tokens[i].text], ctx.tokens[i].line)
        for i in ctx.code
        if ctx.tokens[i].kind == "ident" and ctx.tokens[i].text in words
    ]
    return sorted(out, key=lambda s: s.start)


def _lines(ctx: _Context) -> list[tuple[int, int]]:
    """(first code token, end) of each line that has code, end exclusive, before the newline."""
    out: list[tuple[int, int]] = []
    start = 0
    for i, token in enumerate([*ctx.tokens, Token("nl", "", 0)]):
        if token.kind == "nl":
            first = next((j for j in range(start, i) if ctx.tokens[j].is_code), None)
            if first is not None:
                out.append((first, i))
            start = i + 1
    return out


def _line_bounds(ctx: _Context, first: int, end: int) -> tuple[int, int]:
    """The whole physical line: from after the previous newline to after its own."""
    start = first
    while start > 0 and ctx.tokens[start - 1].kind != "nl":
        start -= 1
    stop = end + 1 if end < len(ctx.tokens) else end
    return start, stop


def _indent(ctx: _Context, first: int) -> int:
    prev = ctx.tokens[first - 1] if first > 0 else None
    return len(prev.text.expandtabs(8)) if prev is not None and prev.kind == "ws" else 0


def _balanced(ctx: _Context, start: int, end: int) -> bool:
    depth = 0
    for i in range(start, end):
        text = ctx.tokens[i].text
        if ctx.tokens[i].kind == "op" and len(text) == 1:
            depth += text in "([{"
            depth -= text in ")]}"
            if depth < 0:
                return False
    return depth == 0


def _drop_statement(ctx: _Context) -> list[Site]:
    lines = _lines(ctx)
    out = []
    for n, (first, end) in enumerate(lines):
        if not _balanced(ctx, first, end) or ctx.tokens[first].kind == "comment":
            continue
        last = max(i for i in range(first, end) if ctx.tokens[i].is_code)
        texts = {ctx.tokens[i].text for i in range(first, end) if ctx.tokens[i].is_code}
        head = ctx.tokens[first].text
        if ctx.language == "python":
            if head in _PY_BLOCK or ctx.tokens[last].text == ":" or head.startswith("@"):
                continue
            if not _python_block_survives(ctx, lines, n):
                continue
        elif ctx.language == "ruby":
            if head in _RUBY_BLOCK or texts & {"do", "{", "}", "|"} or head == "end":
                continue
        elif ctx.tokens[last].text != ";" or head in ("for", "return") or texts & {"{", "}"}:
            continue  # C family: a simple statement ending in ';' (not the return)
        start, stop = _line_bounds(ctx, first, end)
        out.append(Site("drop_statement", start, stop, "", ctx.tokens[first].line))
    return out


def _python_block_survives(ctx: _Context, lines: list[tuple[int, int]], n: int) -> bool:
    """False when line ``n`` is the only statement of its block."""
    indent = _indent(ctx, lines[n][0])
    prev_opens = n == 0 or ctx.tokens[max(
        i for i in range(*lines[n - 1]) if ctx.tokens[i].is_code
    )].text == ":"  # fmt: skip
    next_same = n + 1 < len(lines) and _indent(ctx, lines[n + 1][0]) == indent
    return not prev_opens or next_same


def _swap_arguments(ctx: _Context) -> list[Site]:
    out = []
    for i in ctx.code:
        token = ctx.tokens[i]
        following = ctx.next(i)
        if token.kind != "ident" or token.text in _KEYWORDS or following is None:
            continue
        if following.text != "(":
            continue
        before = ctx.prev(i)
        if before is not None and before.text in ("def", "function", "fn", "func"):
            continue
        open_at = ctx.code[ctx.position[i] + 1]
        close_at = ctx.matching(open_at)
        if close_at is None:
            continue
        args = _arguments(ctx, open_at, close_at)
        for (a_start, a_end), (b_start, b_end) in itertools.pairwise(args):
            a, b = ctx.text(a_start, a_end), ctx.text(b_start, b_end)
            if a.strip() == b.strip() or not a.strip() or not b.strip():
                continue
            swapped = _swap_text(a, b)
            out.append(Site("swap_arguments", a_start, b_end, swapped, token.line))
    return out


def _arguments(ctx: _Context, open_at: int, close_at: int) -> list[tuple[int, int]]:
    """Token spans of the top-level arguments between the brackets."""
    spans, depth, start = [], 0, open_at + 1
    for i in range(open_at + 1, close_at):
        text = ctx.tokens[i].text
        if ctx.tokens[i].kind != "op":
            continue
        if text in ("(", "[", "{"):
            depth += 1
        elif text in (")", "]", "}"):
            depth -= 1
        elif text == "," and depth == 0:
            spans.append((start, i))
            start = i + 1
    spans.append((start, close_at))
    return spans if len(spans) >= 2 else []


def _swap_text(a: str, b: str) -> str:
    """``a , b`` -> ``b , a`` keeping the whitespace around each argument in place."""
    a_core, b_core = a.strip(), b.strip()
    a_lead = a[: len(a) - len(a.lstrip())]
    a_trail = a[len(a.rstrip()) :]
    b_lead = b[: len(b) - len(b.lstrip())]
    b_trail = b[len(b.rstrip()) :]
    return f"{a_lead}{b_core}{a_trail},{b_lead}{a_core}{b_trail}"


_OPERATORS: tuple[Callable[[_Context], list[Site]], ...] = (
    _comparison,
    _arithmetic,
    _constant,
    _negate,
    _logical,
    _drop_statement,
    _swap_arguments,
)
