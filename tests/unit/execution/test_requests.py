"""Request validation: every rejection names the field."""

from __future__ import annotations

from typing import Any

import pytest
from codejury.core.errors import ConfigurationError, FailedPreconditionError, InvalidArgumentError
from codejury.core.settings import load_settings
from codejury.execution.languages import LANGUAGES
from codejury.execution.requests import check_candidates, check_language, limits_from_proto
from codejury.execution.sandbox import Limits
from codejury.proto.v1 import domain_pb2, services_pb2


def problem(**fields: object) -> domain_pb2.Problem:
    values: dict[str, object] = {"problem_id": "p", "language": "python", "prompt": "def f():\n"}
    values.update(fields)
    return domain_pb2.Problem(**values)  # type: ignore[arg-type]


def test_unknown_language_is_invalid_argument_listing_choices() -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown language 'cobol'.*python"):
        check_language(problem(language="cobol"))


def test_empty_language_names_the_field() -> None:
    with pytest.raises(InvalidArgumentError, match=r"problem\.language is empty"):
        check_language(problem(language=""))


def test_aliases_resolve() -> None:
    assert check_language(problem(language="PY")).name == "python"


def test_missing_toolchain_is_a_failed_precondition_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lua = LANGUAGES["lua"]
    monkeypatch.setitem(
        LANGUAGES, "lua", type(lua)(**{**lua.__dict__, "toolchain": ("/nonexistent/lua",)})
    )
    import codejury.execution.languages as registry

    monkeypatch.setitem(registry._BY_ALIAS, "lua", LANGUAGES["lua"])
    with pytest.raises(FailedPreconditionError, match=r"/nonexistent/lua.*apt-get install lua5.4"):
        check_language(problem(language="lua"))


def test_candidates_empty_blank_and_oversized() -> None:
    with pytest.raises(InvalidArgumentError, match="candidates is empty"):
        check_candidates(problem(), [], max_batch=4, max_program_bytes=100)
    blank = problem(prompt="", tests="")
    with pytest.raises(InvalidArgumentError, match=r"candidates\[1\].*empty"):
        check_candidates(
            blank,
            [domain_pb2.Candidate(completion="x = 1"), domain_pb2.Candidate(completion="  ")],
            max_batch=4,
            max_program_bytes=100,
        )
    big = domain_pb2.Candidate(completion="x" * 200)
    with pytest.raises(InvalidArgumentError, match=r"candidates\[0\].*over the limit of 100"):
        check_candidates(problem(), [big], max_batch=4, max_program_bytes=100)
    with pytest.raises(InvalidArgumentError, match="5 entries, over the limit of 4"):
        check_candidates(
            problem(),
            [domain_pb2.Candidate(completion="1")] * 5,
            max_batch=4,
            max_program_bytes=100,
        )


def test_an_empty_completion_with_tests_is_a_real_program() -> None:
    check_candidates(
        problem(tests="assert f() == 1"),
        [domain_pb2.Candidate()],
        max_batch=1,
        max_program_bytes=1000,
    )


CEILINGS = Limits(
    timeout_s=120, memory_bytes=8 << 30, max_processes=1024, max_output_bytes=16 << 20
)


def test_limits_merge_over_defaults_and_reject_bad_values() -> None:
    defaults = Limits(timeout_s=10, memory_bytes=1 << 30)
    merged = limits_from_proto(services_pb2.ExecutionLimits(timeout_s=2), defaults, CEILINGS)
    assert merged.timeout_s == 2 and merged.memory_bytes == 1 << 30
    with pytest.raises(InvalidArgumentError, match=r"limits\.max_processes must be >= 0"):
        limits_from_proto(services_pb2.ExecutionLimits(max_processes=-1), defaults, CEILINGS)
    with pytest.raises(InvalidArgumentError, match=r"limits\.memory_bytes must be >= 16 MiB"):
        limits_from_proto(services_pb2.ExecutionLimits(memory_bytes=1024), defaults, CEILINGS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_s", 121),
        ("memory_bytes", (8 << 30) + 1),
        ("max_processes", 1025),
        ("max_output_bytes", (16 << 20) + 1),
    ],
)
def test_every_limit_has_a_server_ceiling_named_in_the_refusal(field: str, value: float) -> None:
    """Issue 16: memory, processes and output were unbounded; a request could ask a worker
    for any amount. Each is now refused above its ceiling, the field named."""
    request = services_pb2.ExecutionLimits(**{field: value})
    with pytest.raises(InvalidArgumentError, match=rf"limits\.{field} must be <= .*ceiling"):
        limits_from_proto(request, Limits(), CEILINGS)
    at_ceiling = services_pb2.ExecutionLimits(**{field: getattr(CEILINGS, field)})
    assert getattr(limits_from_proto(at_ceiling, Limits(), CEILINGS), field) == getattr(
        CEILINGS, field
    )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"execution": {"ceiling_timeout_s": 300}},
            r"execution\.ceiling_timeout_s=300 is not below celery\.task_soft_time_limit_s=240",
        ),
        ({"execution": {"memory_mb": 9000}}, r"execution\.memory_mb=9000 is above .*ceiling"),
        (
            {"celery": {"task_soft_time_limit_s": 400}},
            r"task_soft_time_limit_s=400 is not below celery\.task_time_limit_s=300",
        ),
    ],
)
def test_limits_that_contradict_each_other_are_refused_at_start(
    overrides: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        load_settings(overrides)
