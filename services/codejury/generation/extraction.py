"""From a chat answer to a completion of the problem's prompt (pure).

The chat model answers in Markdown with the whole function in a code block; the
executor assembles ``prompt + completion + tests``, so the completion must be what
follows the prompt: the function's body. For Python the block is parsed and the body
taken from the syntax tree (its docstring dropped; imports and helpers the answer
defines beside the function are kept, nested at the top of the body, so the body stands
alone). For other languages, and Python that does not parse, the body is the text after
the prompt's last line (matched ignoring whitespace), cut at the language's stop
sequences, which for brace languages also drops the function's closing brace just as
completion-style generation would.
"""

from __future__ import annotations

import ast
import re
import textwrap

from codejury.generation.languages import GenLanguage
from codejury.generation.stopping import cut_at_stops

_BLOCK = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.M | re.S)
_PY_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)[ \t]*\(", re.M)
_MIN_ANCHOR_CHARS = 4  # prompt lines shorter than this ("{", '"""') are not anchors


def code_block(answer: str, language: GenLanguage) -> str:
    """The code of the answer's first block tagged with the language (or untagged), else of
    its first block, else the whole answer. An unclosed block runs to the end."""
    blocks = [(m[1].lower(), m[2]) for m in _BLOCK.finditer(answer)]
    if not blocks:
        return answer
    names = {language.name, language.fence, *language.aliases, ""}
    for tag, code in blocks:
        if tag in names:
            return code
    return blocks[0][1]


def completion_from_answer(
    prompt: str, answer: str, language: GenLanguage, stops: tuple[str, ...], entry_point: str = ""
) -> str:
    """The completion of ``prompt`` that a chat ``answer`` amounts to."""
    code = code_block(answer, language)
    body = _python_body(prompt, code, entry_point) if language.name == "python" else None
    if body is None:
        body = _after_prompt(prompt, code)
    body = cut_at_stops(body, stops)
    if body.strip() and not prompt.endswith("\n") and not body.startswith("\n"):
        body = "\n" + body
    return body


def _after_prompt(prompt: str, code: str) -> str:
    """The code after the last prompt line it repeats (whitespace ignored), else all of it."""
    code_lines = code.splitlines(keepends=True)
    squeezed = ["".join(line.split()) for line in code_lines]
    for line in reversed(prompt.splitlines()):
        anchor = "".join(line.split())
        if len(anchor) < _MIN_ANCHOR_CHARS:
            continue
        if anchor in squeezed:
            at = len(squeezed) - 1 - squeezed[::-1].index(anchor)
            return "".join(code_lines[at + 1 :])
    return code


def _function_name(prompt: str, entry_point: str) -> str | None:
    if entry_point:
        return entry_point
    names = _PY_DEF.findall(prompt)
    return names[-1] if names else None


def _body_indent(prompt: str, name: str) -> str:
    """The indentation of the prompt function's body (its docstring's), default 4 spaces."""
    lines = prompt.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}\b", line):
            def_indent = line[: len(line) - len(line.lstrip())]
            for after in lines[i + 1 :]:
                if after.strip():
                    indent = after[: len(after) - len(after.lstrip())]
                    return indent if len(indent) > len(def_indent) else def_indent + "    "
            return def_indent + "    "
    return "    "


def _parse_prefix(code: str) -> ast.Module | None:
    """The longest prefix of ``code`` (whole lines) that parses: answers cut by the token
    limit end mid-statement."""
    lines = code.splitlines(keepends=True)
    for end in range(len(lines), 0, -1):
        try:
            return ast.parse("".join(lines[:end]))
        except SyntaxError:
            continue
    return None


def _segment(lines: list[str], node: ast.stmt) -> str:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return textwrap.dedent("".join(lines[first - 1 : node.end_lineno]))


def _python_body(prompt: str, code: str, entry_point: str) -> str | None:
    name = _function_name(prompt, entry_point)
    tree = _parse_prefix(code) if name else None
    if tree is None:
        return None
    lines = code.splitlines(keepends=True)
    function = next(
        (
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        ),
        None,
    )
    if function is None:
        return None
    statements = list(function.body)
    if (
        statements
        and isinstance(statements[0], ast.Expr)
        and isinstance(statements[0].value, ast.Constant)
        and isinstance(statements[0].value.value, str)
    ):
        statements = statements[1:]
    if not statements:
        return None
    prompt_imports = {
        line.strip() for line in prompt.splitlines() if line.startswith(("import ", "from "))
    }
    helpers = [
        _segment(lines, node)
        for node in tree.body
        if node is not function
        and isinstance(
            node,
            ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
        )
        and not (
            isinstance(node, ast.Import | ast.ImportFrom) and ast.unparse(node) in prompt_imports
        )
    ]
    first = statements[0]
    if lines[first.lineno - 1][: first.col_offset].strip():
        # `def f(x): return x`: the body shares the def's line
        body = "\n".join(ast.get_source_segment(code, s) or "" for s in statements) + "\n"
    else:
        end = function.end_lineno or first.lineno
        body = textwrap.dedent("".join(lines[first.lineno - 1 : end]))
    indent = _body_indent(prompt, name or "")
    return textwrap.indent(
        "".join(h if h.endswith("\n") else h + "\n" for h in helpers) + body, indent
    )
