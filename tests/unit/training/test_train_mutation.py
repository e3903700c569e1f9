"""Mutation operators per language: distinct, changed programs; strings and comments kept."""

from __future__ import annotations

import random

import pytest
from codejury.training.errors import UnsupportedLanguageError
from codejury.training.mutation import SUPPORTED_LANGUAGES, apply, mutate, sites

# Each program has a string literal and a comment full of operators that must survive
# every mutant unchanged.
PROGRAMS = {
    "python": (
        '    s = "a < b + 1 == c"  # x <= 2 - 3\n'
        "    total = 0\n"
        "    for i in range(1, n):\n"
        "        if i % 2 == 0 and i > limit:\n"
        "            total += i * 2\n"
        "    return max(total, s.count('<'))\n",
        ['"a < b + 1 == c"', "# x <= 2 - 3", "'<'"],
    ),
    "cpp": (
        "    vector<int> out; // i <= n - 1\n"
        '    string s = "i < n + 1";\n'
        "    for (int i = 0; i < n; i++) {\n"
        "        if (v[i] >= 2 && v[i] != 7) {\n"
        "            out.push_back(v[i] * 3);\n"
        "        }\n"
        "    }\n"
        "    return compute(out, s.size() + 1);\n",
        ["// i <= n - 1", '"i < n + 1"'],
    ),
    "java": (
        '        String s = "a == b - 1"; /* i >= 0 */\n'
        "        int count = 0;\n"
        "        for (int i = 0; i < n; i++) {\n"
        "            if (arr[i] > 0 || arr[i] == -5) {\n"
        "                count += arr[i] / 2;\n"
        "            }\n"
        "        }\n"
        "        return Math.max(count, s.length());\n",
        ['"a == b - 1"', "/* i >= 0 */"],
    ),
    "javascript": (
        "  const s = `x <= ${1 + 2}`; // n === 3\n"
        "  let best = 0;\n"
        "  for (let i = 1; i <= n; i++) {\n"
        "    if (i % 3 === 0) {\n"
        "      best = Math.max(best, i - 1);\n"
        "    }\n"
        "  }\n"
        "  return best + s.length;\n",
        ["`x <= ${1 + 2}`", "// n === 3"],
    ),
    "typescript": (
        "  const parts: Array<number> = []; // a < b\n"
        "  let acc = 1;\n"
        "  while (acc < limit) {\n"
        "    acc = acc * 2 + 1;\n"
        "    parts.push(acc);\n"
        "  }\n"
        "  return parts.filter((x) => x > 0 && x != 9).length + 'a<b'.length;\n",
        ["// a < b", "'a<b'"],
    ),
    "php": (
        '    $s = "x < 1 + $y"; # not < 2\n'
        "    $sum = 0;\n"
        "    for ($i = 0; $i < count($arr); $i++) {\n"
        "        if ($arr[$i] >= 10) {\n"
        "            $sum += $arr[$i] - 1;\n"
        "        }\n"
        "    }\n"
        "    return max($sum, strlen($s));\n",
        ['"x < 1 + $y"', "# not < 2"],
    ),
    "ruby": (
        '  s = "n > 2 - 1" # i <= 3\n'
        "  total = 0\n"
        "  (1..n).each do |i|\n"
        "    total += i * 2 if i.even?\n"
        "  end\n"
        "  return total if total > 10\n"
        "  [total, s.length].max - 1\n",
        ['"n > 2 - 1"', "# i <= 3"],
    ),
    "csharp": (
        '        string s = "a <= b"; // c > 1\n'
        "        var list = new List<int>();\n"
        "        for (int i = 0; i < n; i++) {\n"
        "            if (i % 2 != 0) {\n"
        "                list.Add(i + 1);\n"
        "            }\n"
        "        }\n"
        "        return Math.Min(list.Count, s.Length);\n",
        ['"a <= b"', "// c > 1"],
    ),
}


def test_every_required_language_has_operators() -> None:
    required = {"python", "cpp", "java", "javascript", "typescript", "php", "ruby", "csharp"}
    assert required <= set(SUPPORTED_LANGUAGES)


@pytest.mark.parametrize("language", sorted(PROGRAMS))
def test_mutants_are_distinct_changed_and_leave_strings_and_comments(language: str) -> None:
    program, protected = PROGRAMS[language]
    mutants = list(mutate(program, language, random.Random(0), 40))
    assert len(mutants) >= 12, [m.detail for m in mutants]
    texts = [m.program for m in mutants]
    assert len(set(texts)) == len(texts) and program not in texts
    lines = program.splitlines(keepends=True)
    for mutant in mutants:
        if mutant.operator == "drop_statement":  # one whole line gone, the rest unchanged
            gone = mutant.line - 1
            assert mutant.program == "".join(lines[:gone] + lines[gone + 1 :]), mutant.detail
            continue
        for literal in protected:  # edits never reach inside strings or comments
            assert literal in mutant.program, (mutant.detail, literal)
    operators = {m.operator for m in mutants}
    assert {"comparison", "arithmetic", "constant", "negate", "drop_statement"} <= operators
    # The same seed gives the same mutants.
    assert [m.program for m in mutate(program, language, random.Random(0), 40)] == texts


@pytest.mark.parametrize(
    ("language", "program", "operator", "expected"),
    [
        ("python", "    if a < b:\n        return 1\n", "negate", "    if not (a < b):\n"),
        ("cpp", "    if (a < b) {\n        x = 1;\n    }\n", "negate", "if (!(a < b)) {"),
        ("ruby", "  return 1 if a < b\n", "negate", "return 1 unless a < b"),
        ("python", "    return f(a, b + 1)\n", "swap_arguments", "f(b + 1, a)"),
        ("java", "    return Math.max(x, y);\n", "swap_arguments", "Math.max(y, x)"),
        ("javascript", "  return a && b;\n", "logical", "a || b"),
        ("python", "    return a and True\n", "logical", "a or True"),
        ("php", "    return $a === $b;\n", "comparison", "$a !== $b"),
        ("python", "    x = n // 2\n", "arithmetic", "n / 2"),
    ],
)
def test_operators_make_the_expected_edit(
    language: str, program: str, operator: str, expected: str
) -> None:
    edits = [
        apply(program, language, s) for s in sites(program, language) if s.operator == operator
    ]
    assert any(expected in e for e in edits), edits


def test_constants_move_by_one_and_python_keeps_a_block_non_empty() -> None:
    program = "    if n:\n        return 10\n    return 0\n"
    edits = {apply(program, "python", s) for s in sites(program, "python")}
    assert "    if n:\n        return 11\n    return 0\n" in edits
    assert "    if n:\n        return 9\n    return 0\n" in edits
    assert "    if n:\n        return 10\n    return 1\n" in edits
    # Dropping 'return 10' would leave 'if n:' with an empty block: never offered.
    assert "    if n:\n    return 0\n" not in edits


def test_cpp_generic_brackets_and_includes_are_not_comparisons() -> None:
    program = "#include <vector>\n    vector<pair<int, int>> v;\n    return v.size() < n;\n"
    comparisons = [s for s in sites(program, "cpp") if s.operator == "comparison"]
    assert [apply(program, "cpp", s).splitlines()[2] for s in comparisons] == [
        "    return v.size() <= n;"
    ]


def test_an_unsupported_language_names_the_supported_ones() -> None:
    with pytest.raises(UnsupportedLanguageError, match="'cobol' has no mutation operators: use"):
        list(mutate("x", "cobol", random.Random(0), 1))
