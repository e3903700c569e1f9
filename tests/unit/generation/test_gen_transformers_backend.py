"""The transformers backend on a tiny random model: batching, stops, seeds, log-probs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from codejury.core.errors import InvalidArgumentError
from codejury.core.settings import GenerationSettings
from codejury.generation.backends import Job
from codejury.generation.backends.huggingface import TransformersBackend
from codejury.generation.generator import Generator
from codejury.generation.prompts import ChatMessage, Prompt, PromptStyle
from codejury.generation.requests import Sampling
from codejury.generation.stopping import StopRule, first_stop
from codejury.proto.v1 import domain_pb2

# Single characters that the tiny model's near-uniform sampling meets within a few tokens.
STOPS = ("e", "t", "\n")


def settings_for(model_dir: Path, **fields: Any) -> GenerationSettings:
    values: dict[str, Any] = {"model": str(model_dir), "prompt_style": "completion"}
    values.update(fields)
    return GenerationSettings(**values)


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend.from_settings(settings_for(tiny_model_dir, batch_rows=8))


def job(
    problem: int = 0,
    text: str = "def add(a, b):\n",
    stops: tuple[str, ...] = STOPS,
    budget: int = 24,
) -> Job:
    return Job(problem, Prompt(PromptStyle.COMPLETION, text, (), StopRule(sequences=stops)), budget)


def sampling(seed: int = 1, max_new_tokens: int = 24, **fields: Any) -> Sampling:
    values: dict[str, Any] = {
        "temperature": 1.0,
        "top_p": 1.0,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "greedy": False,
    }
    values.update(fields)
    return Sampling(**values)


class ForwardCounter:
    """Records the batch size of every forward pass; ``on_pass`` runs inside the pass."""

    def __init__(self, backend: TransformersBackend, on_pass: Any = None) -> None:
        self.batches: list[int] = []
        self._model = backend._model
        self._on_pass = on_pass

    def _seen(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        self.batches.append(kwargs["input_ids"].shape[0])
        if self._on_pass is not None:
            self._on_pass(len(self.batches))

    def __enter__(self) -> ForwardCounter:
        self._handle = self._model.register_forward_hook(self._seen, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def test_n_samples_per_problem_from_one_batch_each_cut_at_its_first_stop(
    backend: TransformersBackend,
) -> None:
    with ForwardCounter(backend) as seen:
        samples = backend.generate([job(0), job(1, "int main() {\n")], 6, sampling())
    assert [(s.problem, s.index) for s in samples] == [(p, i) for p in (0, 1) for i in range(6)]
    # Per problem: the prompt's forward pass once, on one row (its cache is shared by the
    # rows), then one generate() whose every pass carries all 6 rows, at most
    # max_new_tokens passes per problem, not 6 times as many.
    assert seen.batches.count(1) == 2 and seen.batches[0] == 1
    passes: list[int] = []  # per problem: the forward passes of its generate(), all rows each
    for rows in seen.batches:
        if rows == 1:
            passes.append(0)
        else:
            assert rows == 6
            passes[-1] += 1
    assert len(passes) == 2
    decode = backend._tokenizer.decode
    stopped = [s for s in samples if s.finish_reason == "stop"]
    assert len(stopped) >= 8  # the stops are common: most rows meet one
    for problem, count in enumerate(passes):
        # The stop rule runs during generation: the batch ends at the step its last row
        # finishes (a stop met in the token after the kept ones costs one step more), not
        # at max_new_tokens.
        longest = max(s.completion_tokens for s in samples if s.problem == problem)
        assert count <= longest + 1, (problem, count, longest)
    for sample in samples:
        assert not any(stop in sample.text for stop in STOPS), sample
        assert len(sample.token_ids) == sample.completion_tokens
        assert decode(list(sample.token_ids)).startswith(sample.text)
    for sample in stopped:
        # Cut at the first stop: the kept tokens decode to the text, then either nothing
        # more or the stop itself, exactly where the text ends.
        assert sample.completion_tokens < 24
        full = decode(list(sample.token_ids))
        assert first_stop(full, STOPS) in (None, len(sample.text)), (full, sample.text)


def test_a_batch_ends_when_its_last_row_stops_not_at_max_new_tokens(
    backend: TransformersBackend,
) -> None:
    """With stops every row meets, the batch's forward passes are those of its longest row:
    the stopping criterion finishes rows while they are generated, it does not wait for
    max_new_tokens and cut afterwards."""
    stops = (*STOPS, " ")
    with ForwardCounter(backend) as seen:
        samples = backend.generate([job(stops=stops, budget=24)], 6, sampling(seed=1))
    assert {s.finish_reason for s in samples} == {"stop"}
    generated = [b for b in seen.batches if b != 1]
    assert set(generated) == {6}
    longest = max(s.completion_tokens for s in samples)
    assert longest < 23 and longest <= len(generated) <= longest + 1


def test_seeds_make_samples_reproducible_and_different_seeds_differ(
    backend: TransformersBackend,
) -> None:
    first = backend.generate([job()], 4, sampling(seed=11))
    again = backend.generate([job()], 4, sampling(seed=11))
    other = backend.generate([job()], 4, sampling(seed=12))
    assert first == again
    assert [s.token_ids for s in first] != [s.token_ids for s in other]
    assert len({s.token_ids for s in first}) > 1  # the rows of a batch differ from each other


def test_a_seed_repeats_its_samples_in_a_freshly_loaded_backend(
    backend: TransformersBackend, tiny_model_dir: Path
) -> None:
    """Reproducible across loads (a restarted service), not just within one process state:
    sampling in between does not shift what a seed draws."""
    first = backend.generate([job()], 4, sampling(seed=21))
    backend.generate([job(0, "x = ")], 3, sampling(seed=99))
    fresh = TransformersBackend.from_settings(settings_for(tiny_model_dir, batch_rows=8))
    assert fresh.generate([job()], 4, sampling(seed=21)) == first


def test_top_p_and_temperature_reach_the_sampler(backend: TransformersBackend) -> None:
    """A nucleus of one token, or a temperature near 0, is greedy decoding; at temperature 1
    the rows differ. Log-probs stay the model's own (temperature 1) whatever the sampling."""
    stops = ("\n",)
    greedy = backend.generate([job(stops=stops, budget=12)], 1, sampling(greedy=True))
    (expected,) = {s.token_ids for s in greedy}
    assert expected
    nucleus = backend.generate([job(stops=stops, budget=12)], 4, sampling(seed=8, top_p=1e-9))
    cold = backend.generate([job(stops=stops, budget=12)], 4, sampling(seed=8, temperature=1e-6))
    hot = backend.generate([job(stops=stops, budget=12)], 4, sampling(seed=8, temperature=1.0))
    assert {s.token_ids for s in nucleus} == {expected}
    assert {s.token_ids for s in cold} == {expected}
    assert any(s.token_ids != expected for s in hot)
    for sample in (*nucleus, *cold):
        assert sample.logprob_sum == pytest.approx(greedy[0].logprob_sum, abs=1e-4)


def test_max_new_tokens_ends_every_row_that_meets_no_stop(backend: TransformersBackend) -> None:
    with ForwardCounter(backend) as seen:
        samples = backend.generate([job(stops=("@@@@",), budget=5)], 3, sampling())
    assert [s.index for s in samples] == [0, 1, 2]
    assert {s.finish_reason for s in samples} <= {"length", "eos"}
    assert all(s.completion_tokens <= 5 for s in samples)
    assert all(s.completion_tokens == 5 for s in samples if s.finish_reason == "length")
    generated = [b for b in seen.batches if b != 1]  # the prompt's own pass has one row
    assert set(generated) == {3} and len(generated) <= 5


def test_a_problems_samples_do_not_depend_on_the_rest_of_the_request(
    backend: TransformersBackend,
) -> None:
    alone = backend.generate([job(0, "x = ")], 3, sampling(seed=5))
    second = backend.generate([job(0, "y = "), job(1, "x = ")], 3, sampling(seed=5))
    assert [s.token_ids for s in alone] == [s.token_ids for s in second if s.problem == 1]


def test_logprobs_are_the_models_own_over_the_kept_tokens(backend: TransformersBackend) -> None:
    """Recompute each sample's log-probability with one plain forward pass."""
    samples = backend.generate([job(stops=("\n",))], 3, sampling(seed=3, temperature=0.7))
    prompt = backend.encode(job().prompt)
    for sample in samples:
        ids = torch.tensor([prompt + list(sample.token_ids)])
        with torch.no_grad():
            logits = backend._model(input_ids=ids).logits[0, len(prompt) - 1 : -1]  # (k, V)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        expected = logprobs.gather(1, ids[0, len(prompt) :, None]).sum().item()
        assert sample.logprob_sum == pytest.approx(expected, abs=1e-3)
        assert sample.logprob_sum < 0 < sample.completion_tokens
        assert sample.prompt_tokens == len(prompt)


def test_greedy_decodes_once_and_hands_out_n_copies(backend: TransformersBackend) -> None:
    with ForwardCounter(backend) as seen:
        samples = backend.generate([job(budget=8)], 5, sampling(greedy=True, max_new_tokens=8))
    assert set(seen.batches) == {1}
    assert [s.index for s in samples] == list(range(5))
    assert len({(s.text, s.token_ids) for s in samples}) == 1


def test_n_over_batch_rows_takes_several_batches(tiny_model_dir: Path) -> None:
    small = TransformersBackend.from_settings(settings_for(tiny_model_dir, batch_rows=2))
    with ForwardCounter(small) as seen:
        samples = small.generate([job(budget=6)], 5, sampling(max_new_tokens=6))
    assert [s.index for s in samples] == list(range(5))
    assert set(seen.batches) == {2, 1}
    assert len({s.token_ids for s in samples}) > 1  # the batches are seeded differently


class OnceRule:
    """A stop rule met by the first text it sees, and never again."""

    trigger = None
    window_chars = 8

    def __init__(self) -> None:
        self.met = False

    def cut(self, text: str) -> int | None:
        if self.met:
            return None
        self.met = True
        return len(text)


def test_stream_yields_a_sample_while_its_batch_goes_on_and_cancel_ends_it(
    backend: TransformersBackend,
) -> None:
    # The first row checked stops after one token, the others never do; the fourth
    # forward pass waits until the consumer has the stopped row's sample.
    received, reached = threading.Event(), threading.Event()
    waited: list[bool] = []

    def on_pass(number: int) -> None:
        if number == 4:
            waited.append(received.wait(timeout=30))
            reached.set()

    cancel = threading.Event()
    one_row = Job(0, Prompt(PromptStyle.COMPLETION, "def f():\n", (), OnceRule()), 200)  # type: ignore[arg-type]
    with ForwardCounter(backend, on_pass) as seen:
        stream = backend.stream([one_row], 6, sampling(max_new_tokens=200), cancel)
        first = next(stream)
        received.set()
        assert reached.wait(timeout=30)
        cancel.set()
        rest = list(stream)
    assert waited == [True]  # the sample arrived while its batch was mid-way
    assert first.finish_reason in {"stop", "eos"} and first.completion_tokens <= 1
    assert len(seen.batches) <= 5  # cancelled at the step after
    assert {s.finish_reason for s in rest} <= {"length", "eos"}
    assert sorted(s.index for s in [first, *rest]) == list(range(6))


def test_the_generator_rejects_prompts_over_the_context(tiny_model_dir: Path) -> None:
    settings = settings_for(tiny_model_dir)
    generator = Generator(TransformersBackend.from_settings(settings), settings)
    assert generator.backend.info.context_length == 256
    problem = domain_pb2.Problem(problem_id="long", language="python", prompt="x = 1\n" * 200)
    with pytest.raises(InvalidArgumentError, match=r"problems\[0\]\.prompt is \d+ tokens"):
        generator.generate([problem], 1, domain_pb2.SamplingParams(), request_key="r")
    # The default budget (384 new tokens) shrinks to what the context leaves.
    short = domain_pb2.Problem(problem_id="short", language="python", prompt="x = 1\n" * 20)
    (candidate,) = generator.generate(
        [short], 1, domain_pb2.SamplingParams(seed=1), request_key="r"
    )
    assert candidate.sampling.max_new_tokens == 256 - candidate.prompt_tokens
    assert candidate.completion_tokens <= candidate.sampling.max_new_tokens


def test_chat_prompts_use_the_models_chat_template(tiny_model_dir: Path) -> None:
    settings = settings_for(tiny_model_dir, prompt_style="auto")
    generator = Generator(TransformersBackend.from_settings(settings), settings)
    assert generator.style is PromptStyle.CHAT
    problem = domain_pb2.Problem(problem_id="p", language="python", prompt="def f():\n")
    (candidate,) = generator.generate(
        [problem], 1, domain_pb2.SamplingParams(max_new_tokens=5, seed=2), request_key="r"
    )
    backend = generator.backend
    assert isinstance(backend, TransformersBackend)
    chat_tokens = backend.prompt_tokens(
        Prompt(PromptStyle.CHAT, "", (ChatMessage("user", "x"),), StopRule())
    )
    assert chat_tokens > 3 and candidate.prompt_tokens > len("def f():\n") // 4
    assert candidate.model_name == "tiny-chat-lm" and candidate.model_revision.startswith("fp-")
