"""Request validation: every rejection names the field, the value and the fix."""

from __future__ import annotations

import pytest
from codejury.core.errors import InvalidArgumentError
from codejury.core.settings import GenerationSettings
from codejury.generation.requests import (
    RequestLimits,
    check_problems,
    fit_context,
    resolve_sampling,
)
from codejury.proto.v1 import domain_pb2

LIMITS = RequestLimits.from_settings(
    GenerationSettings(max_n=16, max_problems=3, max_new_tokens_limit=512)  # type: ignore[call-arg]
)


def problem(**fields: object) -> domain_pb2.Problem:
    values: dict[str, object] = {"problem_id": "p", "language": "python", "prompt": "def f():\n"}
    values.update(fields)
    return domain_pb2.Problem(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("problems", "n", "message"),
    [
        ([problem()], 0, r"n must be >= 1, got 0"),
        ([problem()], -3, r"n must be >= 1, got -3"),
        ([problem()], 17, r"n is 17, over the limit of 16 .*CODEJURY_GENERATION__MAX_N"),
        ([], 1, r"problems is empty"),
        ([problem()] * 4, 1, r"problems has 4 entries, over the limit of 3"),
        ([problem(), problem(prompt=" \n")], 1, r"problems\[1\]\.prompt is empty"),
        ([problem(language="cobol")], 1, r"problems\[0\]\.language: unknown .*'cobol'.*python"),
        ([problem(language="")], 1, r"problems\[0\]\.language is empty"),
        ([problem(stop_sequences=["\n", ""])], 1, r"problems\[0\]\.stop_sequences\[1\] is empty"),
    ],
    ids=["n-zero", "n-negative", "n-over-max", "no-problems", "too-many", "empty-prompt",
         "unknown-language", "no-language", "empty-stop"],
)  # fmt: skip
def test_bad_requests_are_invalid_argument_naming_the_field(
    problems: list[domain_pb2.Problem], n: int, message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        check_problems(problems, n, LIMITS)


def test_aliases_resolve_to_the_language() -> None:
    languages = check_problems([problem(language="PY"), problem(language="c++")], 2, LIMITS)
    assert [lang.name for lang in languages] == ["python", "cpp"]


def test_unset_sampling_takes_the_defaults_and_the_given_seed() -> None:
    sampling = resolve_sampling(domain_pb2.SamplingParams(), LIMITS, seed_if_unset=99)
    assert (sampling.temperature, sampling.max_new_tokens, sampling.seed) == (
        pytest.approx(0.8),
        384,
        99,
    )
    assert sampling.top_p == pytest.approx(0.95) and not sampling.greedy
    explicit = resolve_sampling(
        domain_pb2.SamplingParams(temperature=0.2, top_p=0.5, max_new_tokens=7, seed=5),
        LIMITS,
        seed_if_unset=99,
    )
    assert (explicit.max_new_tokens, explicit.seed) == (7, 5)
    assert explicit.to_proto().temperature == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (domain_pb2.SamplingParams(temperature=-1), r"sampling\.temperature must be >= 0"),
        (domain_pb2.SamplingParams(top_p=1.5), r"sampling\.top_p must be in \[0, 1\]"),
        (domain_pb2.SamplingParams(max_new_tokens=-2), r"sampling\.max_new_tokens must be >= 0"),
        (domain_pb2.SamplingParams(max_new_tokens=513), r"513, over the limit of 512"),
    ],
)
def test_bad_sampling_names_the_field(params: domain_pb2.SamplingParams, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        resolve_sampling(params, LIMITS, seed_if_unset=1)


def test_the_context_holds_the_prompt_and_the_budget_asked_for_or_the_default_shrinks() -> None:
    asked = resolve_sampling(domain_pb2.SamplingParams(max_new_tokens=28), LIMITS, seed_if_unset=1)
    default = resolve_sampling(domain_pb2.SamplingParams(), LIMITS, seed_if_unset=1)
    assert fit_context("problems[0]", 100, asked, 128) == 28  # exactly fits
    assert fit_context("problems[0]", 10_000, asked, None) == 28  # unknown: the server checks
    assert fit_context("problems[0]", 100, default, 128) == 28  # 384 by default, shrunk
    with pytest.raises(
        InvalidArgumentError,
        match=r"problems\[2\]\.prompt is 101 tokens; with sampling\.max_new_tokens=28 .* "
        r"context of 128 tokens: shorten the prompt or ask for at most 27 new tokens",
    ):
        fit_context("problems[2]", 101, asked, 128)
    with pytest.raises(
        InvalidArgumentError, match=r"problems\[0\]\.prompt is 128 tokens, which leaves no room"
    ):
        fit_context("problems[0]", 128, default, 128)
