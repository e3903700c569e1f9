"""From a chat answer to a completion that ``prompt + completion + tests`` can run."""

from __future__ import annotations

import ast

from codejury.generation.extraction import code_block, completion_from_answer
from codejury.generation.languages import get_language

PY = get_language("python")
CPP = get_language("cpp")
PY_STOPS = PY.stop_sequences

PROMPT = (
    "from typing import List\n\n"
    "def below_zero(operations: List[int]) -> bool:\n"
    '    """ True if the balance ever drops below zero.\n'
    '>>> below_zero([1, -2])\nTrue"""\n'
)


def runs(prompt: str, completion: str, test: str) -> bool:
    namespace: dict[str, object] = {}
    exec(prompt + completion + "\n" + test, namespace)
    return True


def test_the_python_body_is_taken_from_the_block_docstring_dropped() -> None:
    answer = (
        "Sure! Here is the function:\n\n```python\nfrom typing import List\n\n"
        "def below_zero(operations: List[int]) -> bool:\n"
        '    """Check the balance."""\n'
        "    balance = 0\n    for op in operations:\n        balance += op\n"
        "        if balance < 0:\n            return True\n    return False\n```\n"
        "This works because..."
    )
    completion = completion_from_answer(PROMPT, answer, PY, PY_STOPS)
    assert completion.startswith("    balance = 0\n")
    assert "Check the balance" not in completion and "import" not in completion
    assert runs(PROMPT, completion, "assert below_zero([1, -2]) and not below_zero([1])")


def test_helpers_and_new_imports_are_nested_so_the_body_stands_alone() -> None:
    answer = (
        "```python\nimport math\nfrom typing import List\n\n"
        "def helper(x):\n    return math.floor(x)\n\n"
        "def below_zero(operations):\n    return any(helper(s) < 0 for s in sums(operations))\n\n"
        "def sums(ops):\n    total = 0\n    for op in ops:\n"
        "        total += op\n        yield total\n\n"
        "print(below_zero([1, -2]))\n"
        "```"
    )
    completion = completion_from_answer(PROMPT, answer, PY, PY_STOPS)
    lines = completion.splitlines()
    assert lines[0] == "    import math"  # "from typing import List" is in the prompt already
    assert "    def helper(x):" in lines and "    def sums(ops):" in lines
    assert "print" not in completion
    assert runs(PROMPT, completion, "assert below_zero([1, -2]) and not below_zero([3])")


def test_an_answer_cut_by_the_token_limit_keeps_what_parses() -> None:
    answer = (
        "```python\ndef below_zero(operations):\n    total = 0\n"
        "    for op in operations:\n        total += op\n        if total < 0:\n"
        "            return True\n    return False\n\nprint(below_zero([1, -"
    )
    completion = completion_from_answer(PROMPT, answer, PY, PY_STOPS)
    assert completion.rstrip().endswith("return False")
    assert runs(PROMPT, completion, "assert below_zero([-1])")


def test_one_line_functions_and_entry_points_given_by_the_problem() -> None:
    prompt = "def double(x):\n    '''Twice x.'''\n"
    answer = "```python\ndef double(x): return 2 * x\n```"
    completion = completion_from_answer(prompt, answer, PY, PY_STOPS, entry_point="double")
    assert completion == "    return 2 * x\n"
    assert runs(prompt, completion, "assert double(4) == 8")


def test_without_the_function_the_text_after_the_prompt_is_used() -> None:
    prompt = "def inc(x):\n    '''x plus one.'''\n"
    answer = "```python\n    '''x plus one.'''\n    return x + 1\n```"
    completion = completion_from_answer(prompt, answer, PY, PY_STOPS)
    assert completion == "    return x + 1\n"
    ast.parse(prompt + completion)


def test_brace_languages_keep_the_body_and_drop_the_closing_brace() -> None:
    prompt = "#include <cassert>\n// Add two numbers\nlong add(long x, long y) {\n"
    answer = (
        "```cpp\n#include <cassert>\nlong add(long x,long y){\n    long s = x + y;\n"
        "    return s;\n}\nint main() { assert(add(1, 2) == 3); }\n```"
    )
    completion = completion_from_answer(prompt, answer, CPP, CPP.stop_sequences)
    assert completion == "    long s = x + y;\n    return s;"


def test_code_block_prefers_the_language_then_untagged_then_the_first() -> None:
    answer = "```text\nnot code\n```\n```py\nx = 1\n```\n"
    assert code_block(answer, PY) == "x = 1\n"
    assert code_block("```\ny = 2\n```", PY) == "y = 2\n"
    assert code_block("```rust\nfn f() {}\n```", PY) == "fn f() {}\n"
    assert code_block("no fences at all", PY) == "no fences at all"
    assert code_block("```python\nunclosed = True\n", PY) == "unclosed = True\n"


def test_a_prompt_without_a_final_newline_gets_one_before_the_body() -> None:
    prompt = "def inc(x):"
    completion = completion_from_answer(
        prompt, "```python\ndef inc(x):\n    return x + 1\n```", PY, ()
    )
    assert completion == "\n    return x + 1\n"
    assert runs(prompt, completion, "assert inc(1) == 2")
