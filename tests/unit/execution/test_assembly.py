"""Program assembly per dataset harness, and the build shape the assembled program selects."""

from __future__ import annotations

import pytest
from codejury.execution.assembly import CPP_HELPER, assemble, go_import_paths
from codejury.execution.languages import get_language
from codejury.execution.languages.base import java_file_stem
from codejury.proto.v1 import domain_pb2

MULTIPL_E = domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E
MBXP = domain_pb2.PROGRAM_ASSEMBLY_MBXP
HUMANEVAL_X = domain_pb2.PROGRAM_ASSEMBLY_HUMANEVAL_X

GO_SETUP = 'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n'
GO_TEST = "func TestF(t *testing.T) {\n    assert.Equal(t, 1.0, F(1))\n}\n"


def problem(language: str, assembly: int, **fields: str) -> domain_pb2.Problem:
    return domain_pb2.Problem(
        problem_id="p",
        language=language,
        assembly=assembly,  # type: ignore[arg-type]
        **fields,
    )


# -- MultiPL-E ----------------------------------------------------------------------------


@pytest.mark.parametrize("assembly", [MULTIPL_E, domain_pb2.PROGRAM_ASSEMBLY_UNSPECIFIED])
def test_multipl_e_is_prompt_completion_newline_tests(assembly: int) -> None:
    p = problem("py", assembly, prompt="def f():\n", tests="assert f() == 1\n")
    assert assemble(p, "    return 1") == "def f():\n    return 1\nassert f() == 1\n"


def test_multipl_e_csharp_debug_assert_failures_end_the_run() -> None:
    tests = "    }\n    static void Main(string[] args) {\n    Debug.Assert(F() == 1);\n    }\n}\n"
    p = problem("cs", MULTIPL_E, prompt="using System.Diagnostics;\nclass Problem {\n", tests=tests)
    program = assemble(p, "    public static int F() { return 2; }")
    assert program.startswith(
        "using System.Diagnostics;\nclass Problem {\n    public static int F()"
    )
    # A global Debug class, found before System.Diagnostics' by C#'s name lookup, that throws.
    assert "\nstatic class Debug\n" in program
    assert 'throw new System.Exception("Debug.Assert failed"' in program


def test_multipl_e_other_languages_get_nothing_appended() -> None:
    p = problem("java", MULTIPL_E, prompt="class Problem {\n", tests="    }\n}\n")
    assert assemble(p, "Debug.Assert(true);") == "class Problem {\nDebug.Assert(true);\n    }\n}\n"


# -- MBXP (mxeval) ------------------------------------------------------------------------


def test_mbxp_is_prompt_completion_test_without_separator() -> None:
    p = problem("javascript", MBXP, prompt="function f() {\n", tests="\nf();\n")
    assert assemble(p, "  return 1;\n}") == "function f() {\n  return 1;\n}\nf();\n"


def test_mbxp_python_calls_check_on_the_entry_point() -> None:
    p = problem(
        "python",
        MBXP,
        prompt="def add(a, b):\n",
        tests="\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n",
        entry_point="add",
    )
    program = assemble(p, "    return a + b\n")
    assert program.endswith("    assert candidate(1, 2) == 3\n\ncheck(add)")


def test_mbxp_csharp_carries_compare_net_objects_when_its_tests_use_it() -> None:
    prompt = "using System;\nusing KellermanSoftware.CompareNetObjects;\n\nnamespace Solution {\n"
    p = problem("csharp", MBXP, prompt=prompt, tests="}\n")
    program = assemble(p, "class Program { static void Main() {} }\n")
    assert program.startswith(prompt + "class Program")
    assert "namespace KellermanSoftware.CompareNetObjects" in program
    assert "public class CompareLogic" in program
    # Without the using directive, nothing is added.
    plain = problem("csharp", MBXP, prompt="namespace Solution {\n", tests="}\n")
    assert "KellermanSoftware" not in assemble(plain, "")


# -- HumanEval-X (CodeGeeX) ---------------------------------------------------------------


def test_humaneval_x_python_gets_the_import_helper_but_not_numpy() -> None:
    p = problem("python", HUMANEVAL_X, prompt="def f():\n", tests="assert f() == 1\n")
    program = assemble(p, "    return 1")
    head, body = program.split("def f():\n")
    assert "import math\n" in head and "from typing import *\n" in head
    assert "numpy" not in head
    assert body == "    return 1\nassert f() == 1\n\n"


def test_humaneval_x_cpp_adds_only_the_helper_includes_the_prompt_lacks() -> None:
    prompt = "#include<stdio.h>\n#include<vector>\nusing namespace std;\nint f(){\n"
    p = problem("cpp", HUMANEVAL_X, prompt=prompt, tests="int main(){}\n")
    program = assemble(p, "return 1;}")
    head = program[: program.index(prompt)]
    assert "#include<stdio.h>" not in head and "#include<vector>" not in head
    assert all(line in head for line in CPP_HELPER if line not in prompt)
    assert program.endswith(prompt + "return 1;}\nint main(){}\n")


def test_humaneval_x_javascript_console_assert_throws() -> None:
    p = problem(
        "js", HUMANEVAL_X, prompt="const f = () => {\n", tests="console.assert(f() === 1)\n"
    )
    program = assemble(p, "  return 2\n}")
    assert program.startswith("console.assert = (ok, ...message) =>")
    assert "throw new Error" in program.splitlines()[0]
    assert program.endswith("const f = () => {\n  return 2\n}\nconsole.assert(f() === 1)\n")


def test_humaneval_x_go_merges_the_prompts_imports_into_test_setup() -> None:
    prompt = (
        'import (\n    "math"\n    "strings"\n)\n\n'
        "// Uses fmt. in a comment only.\nfunc F(x float64) float64 {\n"
    )
    p = problem("go", HUMANEVAL_X, prompt=prompt, tests=GO_TEST, declaration=GO_SETUP)
    program = assemble(p, "    return math.Sqrt(x)\n}\n")
    assert program.startswith(GO_SETUP)
    # math is used, strings is not (Go rejects unused imports), fmt only appears in a comment.
    assert go_import_paths(program) == ["testing", "github.com/stretchr/testify/assert", "math"]
    assert program.count("package main") == 1
    assert program.endswith("func F(x float64) float64 {\n    return math.Sqrt(x)\n}\n\n" + GO_TEST)


def test_humaneval_x_go_imports_helper_packages_the_completion_uses() -> None:
    p = problem(
        "go", HUMANEVAL_X, prompt="func F() string {\n", tests=GO_TEST, declaration=GO_SETUP
    )
    program = assemble(p, "    return strconv.Itoa(1) + fmt.Sprint(sort.IsSorted)\n}\n")
    assert set(go_import_paths(program)) >= {"strconv", "fmt", "sort"}
    # Already in test_setup: not imported twice.
    again = problem("go", HUMANEVAL_X, prompt='import "testing"\n', tests="", declaration=GO_SETUP)
    assert go_import_paths(assemble(again, "var _ = testing.Short\n")).count("testing") == 1


def test_humaneval_x_rust_puts_the_declaration_first() -> None:
    declaration = "use regex::Regex;\nfn f() -> i32{\n"
    tests = "\n#[cfg(test)]\nmod tests {\n    use super::*;\n    #[test]\n    fn t() {}\n}\n"
    p = problem("rust", HUMANEVAL_X, prompt="/* doc */\n", tests=tests, declaration=declaration)
    assert assemble(p, "1\n}\n") == declaration + "/* doc */\n1\n}\n" + tests


@pytest.mark.parametrize("language", ["java", "javascript"])
def test_humaneval_x_java_and_javascript_ignore_the_declaration(language: str) -> None:
    p = problem(language, HUMANEVAL_X, prompt="P", tests="T", declaration="D")
    assert assemble(p, "C").endswith("PC\nT")
    assert "D" not in assemble(p, "C")


# -- the build shape the program selects --------------------------------------------------


def test_go_test_files_build_with_go_test_and_plain_programs_with_go_build() -> None:
    go = get_language("go")
    test_program = assemble(
        problem(
            "go", HUMANEVAL_X, prompt="func F() float64 {\n", tests=GO_TEST, declaration=GO_SETUP
        ),
        "    return 1\n}\n",
    )
    assert go.source_name(test_program) == "main_test.go"
    assert go.for_program(test_program).compile[:3] == ("/usr/bin/go", "test", "-c")
    plain = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println(1) }\n'
    assert go.source_name(plain) == "main.go"
    assert go.for_program(plain).compile[:2] == ("/usr/bin/go", "build")
    assert go.for_program(plain).env["GOPATH"] == "/usr/share/gocode"


def test_rust_test_modules_build_with_rustc_test() -> None:
    rust = get_language("rust")
    with_tests = "fn f() {}\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() { super::f() }\n}\n"
    assert "--test" in rust.for_program(with_tests).compile
    assert "--test" not in rust.for_program("fn main() { assert_eq!(1, 1); }\n").compile


def test_cpp_links_openssl_only_for_programs_that_include_it() -> None:
    cpp = get_language("cpp")
    assert cpp.for_program("#include <openssl/md5.h>\nint main(){}\n").compile[-1] == "-lcrypto"
    assert "-lcrypto" not in cpp.for_program("int main(){}\n").compile


def test_languages_without_variants_build_every_program_the_same_way() -> None:
    python = get_language("python")
    assert python.for_program("print(1)") is python


@pytest.mark.parametrize(
    ("program", "stem"),
    [
        # HumanEval-X: the public class holds main.
        (
            "class Solution {}\npublic class Main {\n public static void main(String[] a) {}\n}",
            "Main",
        ),
        # MBXP: mxeval runs Main even when the solution class has a main of its own.
        (
            "class Sol {\n public static void main(String[] a) {}\n}\nclass Main {\n"
            " public static void main(String[] a) {}\n}",
            "Main",
        ),
        # MultiPL-E: Problem holds main and is not public.
        ("class Problem {\n    public static void main(String[] args) {}\n}\n", "Problem"),
        ("class Helper {}\n", "Main"),
    ],
)
def test_java_file_and_main_class(program: str, stem: str) -> None:
    assert java_file_stem(program) == stem
