"""The EvalPlus checks, as they run inside the sandbox (appended to the program as text).

This module's source is appended after ``prompt + completion``, so it imports nothing of
CodeJury, has no ``__future__`` import (which must open a file) and prefixes its names
with ``_cj_`` (the program under test owns the namespace). Host tests import it directly.

Values cross the sandbox's edge as Python literals (``repr``): the inputs go in, and the
canonical solution's outputs come back one per line; ``_cj_literal`` reads both back.
The comparison is EvalPlus's ``check_output``: equality first; then, where the expected
value is a float or a list of floats (tolerance 1e-6 when the task's ``atol`` is 0) or
the task has an ``atol``, same type and length and every value within ``atol + 1e-7 *
|expected|`` (NumPy's ``allclose``, written out: the sandbox's Python has no NumPy); plus
its per-task oracles (MBPP+ outputs compared as sets, or only as "returned something";
HumanEval+'s ``find_zero`` judged by the root it returns).
"""

import contextlib as _cj_contextlib
import copy as _cj_copy
import io as _cj_io
import math as _cj_math
import sys as _cj_sys
from collections.abc import Callable as _cj_Callable
from typing import Any as _cj_Any

# What the literals may name: ``repr`` writes inf, nan and empty sets this way.
_CJ_NAMES = {"inf": _cj_math.inf, "nan": _cj_math.nan, "set": set, "frozenset": frozenset}
# MBPP+ tasks (by entry point) whose outputs EvalPlus compares as sets (order and
# duplicates aside), and those it judges by "returned something" (None or not).
_CJ_SET_EQUAL = frozenset(
    {
        "similar_elements",
        "find_char_long",
        "common_in_nested_lists",
        "extract_singly",
        "larg_nnum",
        "intersection_array",
        "find_dissimilar",
        "Diff",
    }
)
_CJ_NOT_NONE = frozenset({"check_str", "text_match_three", "text_starta_endb"})
_CJ_RTOL = 1e-07  # np.allclose's, as EvalPlus passes it
_CJ_FLOAT_ATOL = 1e-06  # EvalPlus's tolerance for float outputs of tasks without an atol


def _cj_literal(text: str) -> _cj_Any:
    """A value from its ``repr`` (no builtins but the names above)."""
    return eval(text, {"__builtins__": {}, **_CJ_NAMES})  # noqa: S307 - our own literals


def _cj_call(fn: _cj_Callable[..., _cj_Any], args: _cj_Any) -> _cj_Any:
    """``fn(*args)`` on a copy of the arguments, with anything it prints swallowed."""
    with (
        _cj_contextlib.redirect_stdout(_cj_io.StringIO()),
        _cj_contextlib.redirect_stderr(_cj_io.StringIO()),
    ):
        return fn(*_cj_copy.deepcopy(args))


def _cj_is_floats(value: _cj_Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(item, float) for item in value)
    return False


def _cj_close(out: _cj_Any, exp: _cj_Any, atol: float) -> bool:
    """``np.allclose(out, exp, rtol=1e-7, atol=atol)`` on numbers and (nested) sequences;
    False where NumPy would raise (strings, ragged lists)."""
    if isinstance(exp, (list, tuple)):
        if not isinstance(out, (list, tuple)) or len(out) != len(exp):
            return False
        return all(_cj_close(o, e, atol) for o, e in zip(out, exp, strict=True))
    number = (int, float, complex)
    if not isinstance(out, number) or not isinstance(exp, number):
        return False
    if _cj_math.isinf(abs(out)) or _cj_math.isinf(abs(exp)):
        return out == exp
    return abs(out - exp) <= atol + _CJ_RTOL * abs(exp)


def _cj_poly(xs: _cj_Any, x: float) -> float:
    return float(sum(coeff * _cj_math.pow(x, i) for i, coeff in enumerate(xs)))


def _cj_matches(
    args: _cj_Any, out: _cj_Any, exp: _cj_Any, atol: float, *, dataset: str, entry_point: str
) -> bool:
    """EvalPlus's verdict on one input (``dataset``: "humaneval" or "mbpp")."""
    exact = out == exp
    if dataset == "mbpp":
        if entry_point == "are_equivalent":  # Mbpp/164: any answer (its oracle)
            exact = True
        elif entry_point == "sum_div":  # Mbpp/295
            exact = exact or out == 0
        elif entry_point in _CJ_SET_EQUAL:
            exact = set(out) == set(exp)
        elif entry_point in _CJ_NOT_NONE:
            exact = out == exp if isinstance(out, bool) else exp == (out is not None)
    if dataset == "humaneval" and entry_point == "find_zero":
        return bool(abs(_cj_poly(args[0], out)) <= atol)  # args: the coefficients
    if atol == 0 and _cj_is_floats(exp):
        atol = _CJ_FLOAT_ATOL
    if not exact and atol != 0:
        if type(out) is not type(exp):
            return False
        return _cj_close(out, exp, atol)
    return bool(exact)


def _cj_expected(fn: _cj_Callable[..., _cj_Any], inputs: str) -> None:
    """Prints the ``repr`` of ``fn``'s output on each input, one a line (the canonical
    solution's run); an output whose ``repr`` does not read back as itself is an error."""
    for number, args in enumerate(_cj_literal(inputs)):
        out = _cj_call(fn, args)
        text = repr(out)
        try:
            faithful = repr(_cj_literal(text)) == text
        except Exception:  # any failure to read it back means the same
            faithful = False
        if not faithful:
            _cj_sys.exit(
                f"input {number}: the output ({type(out).__name__}) cannot be written as a "
                "literal, so no candidate can be compared with it"
            )
        print(text)


def _cj_check(
    fn: _cj_Callable[..., _cj_Any],
    inputs: str,
    expected: str,
    *,
    atol: float,
    dataset: str,
    entry_point: str,
) -> None:
    """Exits non-zero at the first input whose output is not the expected one."""
    outputs = _cj_literal(expected)
    for number, (args, exp) in enumerate(zip(_cj_literal(inputs), outputs, strict=True)):
        out = _cj_call(fn, args)
        if not _cj_matches(args, out, exp, atol, dataset=dataset, entry_point=entry_point):
            _cj_sys.exit(f"input {number}: expected {exp!r:.200}, got {out!r:.200}")
