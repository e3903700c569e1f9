"""Validation of generation requests and resolution of sampling parameters (pure).

Every rejection is an ``InvalidRequestError`` (gRPC INVALID_ARGUMENT) naming the field,
the value and the fix. Unset proto3 fields (zero) take the deployment's defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codejury.core.settings import GenerationSettings
from codejury.generation.errors import InvalidRequestError
from codejury.generation.languages import GenLanguage, get_language
from codejury.proto.v1 import domain_pb2


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling parameters with every default filled in; what a backend receives."""

    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    greedy: bool
    max_new_tokens_asked: bool = True  # False: the default, which may shrink to fit the context

    def to_proto(self, max_new_tokens: int | None = None) -> domain_pb2.SamplingParams:
        """What is recorded on each candidate (the seed actually used, even when drawn;
        the problem's own token budget when the default was shrunk to fit)."""
        return domain_pb2.SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            seed=self.seed,
            greedy=self.greedy,
        )


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The deployment's limits and defaults, taken once from the settings."""

    max_n: int
    max_problems: int
    max_new_tokens_limit: int
    temperature: float
    top_p: float
    max_new_tokens: int

    @classmethod
    def from_settings(cls, settings: GenerationSettings) -> RequestLimits:
        return cls(
            max_n=settings.max_n,
            max_problems=settings.max_problems,
            max_new_tokens_limit=settings.max_new_tokens_limit,
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_new_tokens=min(settings.max_new_tokens, settings.max_new_tokens_limit),
        )


def check_problems(
    problems: Sequence[domain_pb2.Problem], n: int, limits: RequestLimits
) -> list[GenLanguage]:
    """Check the problems and n; returns each problem's language."""
    if not problems:
        raise InvalidRequestError("problems is empty: send at least one problem")
    if len(problems) > limits.max_problems:
        raise InvalidRequestError(
            f"problems has {len(problems)} entries, over the limit of {limits.max_problems} "
            "(generation.max_problems): split the request"
        )
    if n <= 0:
        raise InvalidRequestError(f"n must be >= 1, got {n}: ask for at least one candidate")
    if n > limits.max_n:
        raise InvalidRequestError(
            f"n is {n}, over the limit of {limits.max_n} per problem (generation.max_n): "
            "ask for fewer candidates or raise CODEJURY_GENERATION__MAX_N"
        )
    languages = []
    for i, problem in enumerate(problems):
        where = f"problems[{i}]"
        if not problem.prompt.strip():
            raise InvalidRequestError(
                f"{where}.prompt is empty: send the code the model should complete"
            )
        for j, stop in enumerate(problem.stop_sequences):
            if not stop:
                raise InvalidRequestError(
                    f"{where}.stop_sequences[{j}] is empty: it would stop at once; remove it"
                )
        languages.append(get_language(problem.language, field=f"{where}.language"))
    return languages


def resolve_sampling(
    params: domain_pb2.SamplingParams, limits: RequestLimits, *, seed_if_unset: int
) -> Sampling:
    """The request's sampling over the defaults; ``seed_if_unset`` replaces a zero seed."""
    if params.temperature < 0:
        raise InvalidRequestError(
            f"sampling.temperature must be >= 0 (0 = default {limits.temperature:g}), "
            f"got {params.temperature:g}; for greedy decoding set sampling.greedy"
        )
    if not 0 <= params.top_p <= 1:
        raise InvalidRequestError(
            f"sampling.top_p must be in [0, 1] (0 = default {limits.top_p:g}), got {params.top_p:g}"
        )
    if params.max_new_tokens < 0:
        raise InvalidRequestError(
            f"sampling.max_new_tokens must be >= 0 (0 = default {limits.max_new_tokens}), "
            f"got {params.max_new_tokens}"
        )
    if params.max_new_tokens > limits.max_new_tokens_limit:
        raise InvalidRequestError(
            f"sampling.max_new_tokens is {params.max_new_tokens}, over the limit of "
            f"{limits.max_new_tokens_limit} (generation.max_new_tokens_limit): ask for fewer"
        )
    return Sampling(
        temperature=params.temperature or limits.temperature,
        top_p=params.top_p or limits.top_p,
        max_new_tokens=params.max_new_tokens or limits.max_new_tokens,
        seed=params.seed or seed_if_unset,
        greedy=params.greedy,
        max_new_tokens_asked=params.max_new_tokens > 0,
    )


def fit_context(where: str, prompt_tokens: int, sampling: Sampling, context: int | None) -> int:
    """The new-token budget of one problem: the prompt and the longest completion must fit
    the model's context. A default budget shrinks to fit; one the request asked for does not.
    """
    if context is None:
        return sampling.max_new_tokens
    room = context - prompt_tokens
    if room < 1:
        raise InvalidRequestError(
            f"{where}.prompt is {prompt_tokens} tokens, which leaves no room in the model's "
            f"context of {context} tokens: shorten the prompt"
        )
    if sampling.max_new_tokens <= room:
        return sampling.max_new_tokens
    if not sampling.max_new_tokens_asked:
        return room
    raise InvalidRequestError(
        f"{where}.prompt is {prompt_tokens} tokens; with sampling.max_new_tokens="
        f"{sampling.max_new_tokens} that exceeds the model's context of {context} tokens: "
        f"shorten the prompt or ask for at most {room} new tokens"
    )
