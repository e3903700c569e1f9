"""Putting a problem and a completion together into the program that runs (pure).

Each dataset is assembled the way its own harness does it, so that a completion passes
here exactly when it would pass there:

- MultiPL-E: ``prompt + completion + "\\n" + tests``;
- MBXP (mxeval): ``prompt + completion + test``, plus ``check(<entry_point>)`` in Python;
- HumanEval-X (CodeGeeX), per language: Python and C++ get the harness's import helpers,
  Go gets ``declaration`` (its ``test_setup``: package and test imports) with the prompt's
  imports merged into it, Rust gets ``declaration`` (its ``use`` lines and signature).

Where a harness relies on something outside the program, the program carries it instead:
MBXP's C# gets the CompareNetObjects subset its tests use; MultiPL-E's C# a ``Debug``
whose failed asserts exit non-zero; HumanEval-X's JavaScript a ``console.assert`` that
throws (its harness fails any run that prints, which is what a failed assert does).
An unspecified assembly is treated as MultiPL-E.
"""

from __future__ import annotations

import re

from codejury.execution.errors import UnknownLanguageError
from codejury.execution.languages import get_language
from codejury.execution.languages.csharp_support import (
    with_compare_net_objects,
    with_fatal_debug_assert,
)
from codejury.proto.v1 import domain_pb2

#: CodeGeeX's IMPORT_HELPER["python"] without numpy (not installed for the sandbox's
#: Python, and no canonical solution needs it).
PYTHON_HELPER = (
    "import math",
    "import re",
    "import sys",
    "import copy",
    "import datetime",
    "import itertools",
    "import collections",
    "import heapq",
    "import statistics",
    "import functools",
    "import hashlib",
    "import string",
    "from typing import *",
    "from collections import *",
)
#: CodeGeeX's IMPORT_HELPER["cpp"]: each line not already in the prompt goes first.
CPP_HELPER = (
    "#include<stdlib.h>",
    "#include<algorithm>",
    "#include<math.h>",
    "#include<stdio.h>",
    "#include<vector>",
    "#include<string>",
    "#include<climits>",
    "#include<cstring>",
    "#include<iostream>",
)
#: CodeGeeX's IMPORT_HELPER["go"]: packages imported when the code uses them.
GO_HELPER = (
    "math",
    "strings",
    "fmt",
    "strconv",
    "time",
    "bytes",
    "regexp",
    "sort",
    "math/rand",
    "crypto/md5",
)
JS_FATAL_CONSOLE_ASSERT = (
    "console.assert = (ok, ...message) => "
    '{ if (!ok) throw new Error(["Assertion failed", ...message].join(" ")); };\n'
)

_GO_IMPORT = re.compile(r'^import\s*(?:\(([^)]*)\)|("[^"\n]+"))[ \t]*\n?', re.MULTILINE)
_GO_PATH = re.compile(r'"([^"\n]+)"')
_GO_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def assemble(problem: domain_pb2.Problem, completion: str) -> str:
    """The full program text for ``completion`` of ``problem``."""
    language = _registry_name(problem.language)
    if problem.assembly == domain_pb2.PROGRAM_ASSEMBLY_MBXP:
        return _mbxp(problem, completion, language)
    if problem.assembly == domain_pb2.PROGRAM_ASSEMBLY_HUMANEVAL_X:
        return _humaneval_x(problem, completion, language)
    program = problem.prompt + completion + "\n" + problem.tests
    return with_fatal_debug_assert(program) if language == "csharp" else program


def _mbxp(problem: domain_pb2.Problem, completion: str, language: str) -> str:
    program = problem.prompt + completion + problem.tests
    if language == "python":
        return program + f"\ncheck({problem.entry_point})"
    if language == "csharp":
        return with_compare_net_objects(program)
    return program


def _humaneval_x(problem: domain_pb2.Problem, completion: str, language: str) -> str:
    prompt, tests = problem.prompt, problem.tests
    if language == "python":
        return "\n".join(PYTHON_HELPER) + "\n" + prompt + completion + "\n" + tests + "\n"
    if language == "cpp":
        helper = "".join(f"{line}\n" for line in CPP_HELPER if line not in prompt)
        return helper + "\n" + prompt + completion + "\n" + tests
    if language == "javascript":
        return JS_FATAL_CONSOLE_ASSERT + prompt + completion + "\n" + tests
    if language == "go":
        return _go_humaneval_x(problem.declaration, prompt, completion, tests)
    if language == "rust":  # tests are a #[cfg(test)] module: no main needed (rustc --test)
        return problem.declaration + prompt + completion + tests
    return prompt + completion + "\n" + tests  # Java, JavaScript


def _go_humaneval_x(setup: str, prompt: str, completion: str, tests: str) -> str:
    """CodeGeeX: ``test_setup``, then the helper packages the code uses, then the prompt
    without its own imports. Go rejects unused imports, so a package is imported only when
    the code (comments aside) refers to it and ``test_setup`` does not import it."""
    body = _GO_IMPORT.sub("", prompt)
    code = _GO_COMMENT.sub("", body + completion + "\n" + tests)
    have = set(go_import_paths(setup))
    wanted = dict.fromkeys([*go_import_paths(prompt), *GO_HELPER])
    extra = [
        path
        for path in wanted
        if path not in have and re.search(rf"\b{re.escape(path.rsplit('/', 1)[-1])}\.", code)
    ]
    imports = "import (\n" + "".join(f'    "{p}"\n' for p in extra) + ")\n" if extra else ""
    return setup + "\n" + imports + "\n" + body + completion + "\n" + tests


def go_import_paths(source: str) -> list[str]:
    """The package paths of ``source``'s import declarations, in order."""
    return [
        path
        for match in _GO_IMPORT.finditer(source)
        for path in _GO_PATH.findall(match.group(1) or match.group(2))
    ]


def _registry_name(language: str) -> str:
    try:
        return get_language(language).name
    except UnknownLanguageError:
        return language.strip().lower()
