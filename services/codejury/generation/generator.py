"""Problems in, candidates out: validation, prompts, a backend, and the candidates' records.

``Generator.generate(problems, n, sampling)`` is what the gRPC service and the Kafka
stage call. It checks the request (``requests``), builds each problem's prompt in the
deployment's style (``prompts``), checks it fits the model's context, lets the backend
sample, and turns each sample into a ``Candidate``: the completion of the problem's
prompt (cut at the stop sequences; for chat answers, the function's body extracted from
the code block), with the model's name and revision, the sampling parameters actually
used (a drawn seed included), token counts and log-probabilities.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from codejury.core import metrics
from codejury.core.errors import ConfigurationError
from codejury.core.settings import GenerationSettings
from codejury.generation.backends import GenerationBackend, Job, Sample
from codejury.generation.cache import SampleCache
from codejury.generation.cache import request_key as cached_request_key
from codejury.generation.extraction import completion_from_answer
from codejury.generation.languages import GenLanguage
from codejury.generation.prompts import (
    Prompt,
    PromptStyle,
    build_prompt,
    resolve_style,
    stop_sequences,
)
from codejury.generation.requests import (
    RequestLimits,
    Sampling,
    check_problems,
    fit_context,
    resolve_sampling,
)
from codejury.generation.stopping import cut_at_stops
from codejury.proto.v1 import domain_pb2

_MAX_SEED = (1 << 63) - 1


def extract_completion(
    prompt: Prompt, text: str, problem: domain_pb2.Problem, language: GenLanguage
) -> str:
    """The completion of the problem's prompt that the model's ``text`` amounts to: cut at
    the stop sequences, or for a chat answer the function's body from its code block.
    PPO scores its samples through this too, so it rewards what the generator serves."""
    stops = stop_sequences(problem, language)
    if prompt.style is PromptStyle.CHAT:
        return completion_from_answer(prompt.text, text, language, stops, problem.entry_point)
    return cut_at_stops(text, stops)


def random_seed() -> int:
    """A fresh non-zero seed, recorded on the candidates so the run can be repeated."""
    return secrets.randbelow(_MAX_SEED) + 1


@dataclass(frozen=True)
class _Prepared:
    problems: Sequence[domain_pb2.Problem]
    languages: list[GenLanguage]
    jobs: list[Job]
    n: int
    sampling: Sampling
    request_key: str


class Generator:
    def __init__(self, backend: GenerationBackend, settings: GenerationSettings) -> None:
        if settings.max_new_tokens > settings.max_new_tokens_limit:
            raise ConfigurationError(
                f"generation.max_new_tokens ({settings.max_new_tokens}) is over "
                f"generation.max_new_tokens_limit ({settings.max_new_tokens_limit}): "
                "lower the default or raise the limit"
            )
        self.backend = backend
        self.limits = RequestLimits.from_settings(settings)
        self.cache = SampleCache(settings.cache_dir) if settings.cache_dir is not None else None
        self.style = resolve_style(settings.prompt_style, backend.info.has_chat_template)

    def generate(
        self,
        problems: Sequence[domain_pb2.Problem],
        n: int,
        sampling: domain_pb2.SamplingParams,
        *,
        request_key: str,
        seed_if_unset: int | None = None,
    ) -> list[domain_pb2.Candidate]:
        """``n`` candidates per problem, grouped by problem in request order."""
        prepared = self._prepare(problems, n, sampling, request_key, seed_if_unset)
        cached = None
        if self.cache is not None:
            key = cached_request_key(
                self.backend.info, prepared.jobs, prepared.n, prepared.sampling
            )
            cached = self.cache.get(key)
        if cached is not None:
            return [self._candidate(prepared, sample) for sample in cached]
        started = time.monotonic()
        samples = self.backend.generate(prepared.jobs, prepared.n, prepared.sampling)
        model = self.backend.info.name
        metrics.GENERATION_SECONDS.labels(model).observe(time.monotonic() - started)
        metrics.GENERATED_TOKENS.labels(model).inc(sum(s.completion_tokens for s in samples))
        if self.cache is not None:
            self.cache.put(key, samples)
        return [self._candidate(prepared, sample) for sample in samples]

    def stream(
        self,
        problems: Sequence[domain_pb2.Problem],
        n: int,
        sampling: domain_pb2.SamplingParams,
        *,
        request_key: str,
        seed_if_unset: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[domain_pb2.Candidate]:
        """The same candidates, each as soon as it is finished. The request is checked
        here, before the first candidate is asked for."""
        prepared = self._prepare(problems, n, sampling, request_key, seed_if_unset)
        samples = self.backend.stream(prepared.jobs, prepared.n, prepared.sampling, cancel)
        return self._counted(prepared, samples)

    def _counted(
        self, prepared: _Prepared, samples: Iterable[Sample]
    ) -> Iterator[domain_pb2.Candidate]:
        tokens = metrics.GENERATED_TOKENS.labels(self.backend.info.name)
        for sample in samples:
            tokens.inc(sample.completion_tokens)
            yield self._candidate(prepared, sample)

    def _prepare(
        self,
        problems: Sequence[domain_pb2.Problem],
        n: int,
        params: domain_pb2.SamplingParams,
        request_key: str,
        seed_if_unset: int | None,
    ) -> _Prepared:
        languages = check_problems(problems, n, self.limits)
        sampling = resolve_sampling(
            params, self.limits, seed_if_unset=seed_if_unset or random_seed()
        )
        context = self.backend.info.context_length
        jobs = []
        for i, (problem, language) in enumerate(zip(problems, languages, strict=True)):
            prompt = build_prompt(problem, language, self.style)
            tokens = self.backend.prompt_tokens(prompt)
            budget = (
                sampling.max_new_tokens
                if tokens is None
                else fit_context(f"problems[{i}]", tokens, sampling, context)
            )
            jobs.append(Job(i, prompt, budget))
        return _Prepared(problems, languages, jobs, n, sampling, request_key)

    def _candidate(self, prepared: _Prepared, sample: Sample) -> domain_pb2.Candidate:
        problem = prepared.problems[sample.problem]
        language = prepared.languages[sample.problem]
        completion = extract_completion(
            prepared.jobs[sample.problem].prompt, sample.text, problem, language
        )
        info = self.backend.info
        return domain_pb2.Candidate(
            candidate_id=f"{prepared.request_key}-{sample.problem}-{sample.index}",
            problem_id=problem.problem_id,
            index=sample.index,
            completion=completion,
            model_name=info.name,
            model_revision=info.revision,
            sampling=prepared.sampling.to_proto(prepared.jobs[sample.problem].max_new_tokens),
            prompt_tokens=sample.prompt_tokens,
            completion_tokens=sample.completion_tokens,
            logprob_sum=sample.logprob_sum,
            logprob_mean=(
                sample.logprob_sum / sample.completion_tokens if sample.completion_tokens else 0.0
            ),
            source=domain_pb2.CANDIDATE_SOURCE_GENERATOR,
            finish_reason=sample.finish_reason,
        )
