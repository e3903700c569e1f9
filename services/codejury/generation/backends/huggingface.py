"""The transformers backend: N samples of a problem in one forward batch, streamed as done.

Per problem, the prompt's token ids are repeated into a (n, T) batch and handed to
``model.generate`` once (``generation.batch_rows`` caps the batch; a larger n takes a few).
Two hooks ride along:

- ``_LogprobRecorder`` (a logits processor placed before temperature and top-p) keeps
  the step's raw log-probabilities, so every candidate's log-probability is the model's
  own (temperature 1), whatever it was sampled with;
- ``_RowWatcher`` (a stopping criterion) decodes the tail of each unfinished row after
  every step; a row whose text meets its stop rule, or that emitted an end-of-sequence
  token, is finished there: its sample is emitted at once and ``generate`` pads it from
  then on.

Generation runs under a lock (one batch at a time on one model) in a worker thread, so
``stream`` can yield samples while the batch goes on. Seeds are per problem (and batch),
so a problem's candidates do not depend on the other problems of its request.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from codejury.core.settings import GenerationSettings
from codejury.generation.backends import (
    Emit,
    FinishReason,
    GenerationBackend,
    Job,
    ModelInfo,
    Sample,
    stream_from_worker,
)
from codejury.generation.backends.hf_loading import LoadedModel, load_model
from codejury.generation.prompts import Prompt, PromptStyle
from codejury.generation.requests import Sampling
from codejury.generation.stopping import StopRule

_SEED_MASK = (1 << 63) - 1
# A stop sequence of c characters lies within the last 2c + 8 tokens (byte-level tokens
# can take several to make one character).
_TAIL_SLACK = 8


def prompt_text(tokenizer: Any, prompt: Prompt) -> str:
    """The text the model continues: the prompt itself, or the chat template applied to
    its messages with the assistant's turn opened (PPO samples from the same text)."""
    if prompt.style is PromptStyle.CHAT:
        text: str = tokenizer.apply_chat_template(
            prompt.chat_dicts(), tokenize=False, add_generation_prompt=True
        )
        return text
    return prompt.text


def batch_seed(seed: int, batch: int) -> int:
    """The torch seed of the ``batch``-th batch of a problem sampled with ``seed``."""
    return (seed if batch == 0 else seed * 1_000_003 + batch) & _SEED_MASK


class _LogprobRecorder(LogitsProcessor):
    """Keeps log-softmax of the raw logits of the current step; changes nothing."""

    def __init__(self) -> None:
        self.logprobs: torch.Tensor | None = None  # (B, V)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.logprobs = torch.log_softmax(scores.float(), dim=-1)
        return scores


@dataclass
class _Batch:
    """One call of ``generate``: which problem, which sample indices, how to stop."""

    job: Job
    prompt_ids: list[int]
    first_index: int
    rows: int
    rule: StopRule
    max_new_tokens: int


class _RowWatcher(StoppingCriteria):
    """Finishes each row at its stop rule or end-of-sequence token and emits its sample."""

    def __init__(
        self,
        batch: _Batch,
        tokenizer: Any,
        eos_ids: frozenset[int],
        emit: Callable[[Sample], None],
        cancelled: Callable[[], bool],
    ) -> None:
        self.batch = batch
        self.recorder = _LogprobRecorder()
        self._tokenizer = tokenizer
        self._eos = eos_ids
        self._emit = emit
        self._cancelled = cancelled
        self._width = len(batch.prompt_ids)
        self._done = [False] * batch.rows
        self._steps: list[torch.Tensor] = []  # per step: (B,) chosen-token log-probs, on cpu
        self._tokens: list[list[int]] = [[] for _ in range(batch.rows)]  # generated so far
        rule = batch.rule
        chars = len(rule.trigger) if rule.trigger is not None else rule.window_chars or 0
        self._window = 2 * chars + _TAIL_SLACK  # tokens decoded per row and step

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        if self.recorder.logprobs is None:
            raise RuntimeError("the log-prob recorder did not run before the stopping criteria")
        chosen = input_ids[:, -1:]  # (B, 1)
        self._steps.append(self.recorder.logprobs.gather(1, chosen).squeeze(1).cpu())
        for tokens, token in zip(self._tokens, chosen.squeeze(1).tolist(), strict=True):
            tokens.append(token)
        rule = self.batch.rule
        tails: list[tuple[int, list[int]]] = []
        for row, tokens in enumerate(self._tokens):
            if self._done[row]:
                continue
            if tokens[-1] in self._eos:
                self._finish(row, tokens[:-1], "eos")
            else:
                tails.append((row, tokens[-self._window :]))
        if tails:
            texts = self._tokenizer.batch_decode([t for _, t in tails], skip_special_tokens=True)
            for (row, _), tail in zip(tails, texts, strict=True):
                tokens = self._tokens[row]
                text = tail
                if rule.trigger is not None and rule.trigger in tail:
                    # The rule needs the whole text, and the tail says it may be met now.
                    text = self._tokenizer.decode(tokens, skip_special_tokens=True)
                if rule.cut(text) is not None:
                    self._finish(row, tokens, "stop")
                elif len(tokens) >= self.batch.max_new_tokens:
                    self._finish(row, tokens, "length")
        done = [True] * len(self._done) if self._cancelled() else self._done
        return cast(torch.BoolTensor, torch.tensor(done, dtype=torch.bool, device=input_ids.device))

    def finish_rest(self) -> None:
        """Rows still open when ``generate`` returned (cancelled, or the length limit)."""
        for row, tokens in enumerate(self._tokens):
            if not self._done[row]:
                self._finish(row, tokens, "length")

    def _finish(self, row: int, tokens: list[int], reason: FinishReason) -> None:
        self._done[row] = True
        decode = self._tokenizer.decode
        text = decode(tokens, skip_special_tokens=True)
        at = self.batch.rule.cut(text) if reason == "stop" else None
        kept = len(tokens)
        if at is not None:
            text = text[:at]
            kept = _tokens_covering(tokens, len(text), decode)
        logprobs = torch.stack(self._steps[:kept])[:, row] if kept else torch.zeros(0)
        self._emit(
            Sample(
                problem=self.batch.job.problem,
                index=self.batch.first_index + row,
                text=text,
                prompt_tokens=self._width,
                completion_tokens=kept,
                logprob_sum=float(logprobs.sum()),
                finish_reason=reason,
                token_ids=tuple(tokens[:kept]),
            )
        )


def _tokens_covering(tokens: list[int], chars: int, decode: Callable[..., str]) -> int:
    """The fewest leading tokens whose text has at least ``chars`` characters."""
    low, high = 0, len(tokens)
    while low < high:
        mid = (low + high) // 2
        if len(decode(tokens[:mid], skip_special_tokens=True)) >= chars:
            high = mid
        else:
            low = mid + 1
    return low


class TransformersBackend(GenerationBackend):
    def __init__(self, loaded: LoadedModel, *, batch_rows: int, name: str | None = None) -> None:
        self._model = loaded.model
        self._tokenizer = loaded.tokenizer
        self._device = loaded.device
        self._batch_rows = batch_rows
        self._lock = threading.Lock()
        tokenizer = self._tokenizer
        eos = self._model.generation_config.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self._eos = frozenset(eos_ids)
        pad = tokenizer.pad_token_id
        self._pad = pad if pad is not None else min(self._eos, default=0)
        # Only our own parameters shape the sampling: no defaults from the checkpoint's
        # generation_config.json (a top_k or a repetition penalty there would change it).
        self._model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=sorted(self._eos) or None,
            pad_token_id=self._pad,
        )
        self._cache_kw = _cache_argument(self._model)
        self.info = ModelInfo(
            name=name or loaded.source.name,
            revision=loaded.revision,
            context_length=loaded.context_length,
            has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        )

    def _prompt_cache(self, batch: _Batch) -> dict[str, Any]:
        """The prompt's KV cache, computed once and repeated for every row of the batch.

        All rows share the prompt, so its forward pass runs on one row instead of n (the
        prefill is most of the work of a short completion). ``generate`` then only runs
        the prompt's last token, for all rows. Returns the ``generate`` keyword for it,
        or nothing when the model takes no cache or the prompt is one token long.
        """
        if self._cache_kw is None or len(batch.prompt_ids) < 2:
            return {}
        from transformers import DynamicCache

        cache = DynamicCache(config=self._model.config)
        prefix = torch.tensor([batch.prompt_ids[:-1]], device=self._device)  # (1, T-1)
        self._model(input_ids=prefix, use_cache=True, **{self._cache_kw: cache})
        if batch.rows > 1:
            cache.batch_repeat_interleave(batch.rows)  # (B, heads, T-1, head_dim) per layer
        return {self._cache_kw: cache}

    @classmethod
    def from_settings(cls, settings: GenerationSettings) -> TransformersBackend:
        return cls(load_model(settings), batch_rows=settings.batch_rows, name=settings.model_name)

    # -- prompts ---------------------------------------------------------------------

    def encode(self, prompt: Prompt) -> list[int]:
        tokenizer = self._tokenizer
        chat = prompt.style is PromptStyle.CHAT
        ids: list[int] = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=not chat)[
            "input_ids"
        ]
        return ids

    def prompt_tokens(self, prompt: Prompt) -> int:
        return len(self.encode(prompt))

    # -- sampling --------------------------------------------------------------------

    def stream(
        self,
        jobs: Sequence[Job],
        n: int,
        sampling: Sampling,
        cancel: threading.Event | None = None,
    ) -> Iterator[Sample]:
        def work(emit: Emit, cancelled: Callable[[], bool]) -> None:
            with self._lock, torch.inference_mode():
                for job in jobs:
                    if cancelled():
                        break
                    self._sample_job(job, n, sampling, emit, cancelled)

        return stream_from_worker(work, cancel, name="generation")

    def _sample_job(
        self,
        job: Job,
        n: int,
        sampling: Sampling,
        emit: Callable[[Sample], None],
        cancelled: Callable[[], bool],
    ) -> None:
        prompt_ids = self.encode(job.prompt)
        if sampling.greedy:
            # Greedy decoding gives n identical samples: compute one, hand out n copies.
            def copies(sample: Sample) -> None:
                for index in range(n):
                    emit(_with_index(sample, index))

            batch = _Batch(job, prompt_ids, 0, 1, job.prompt.stop, job.max_new_tokens)
            self._run(batch, sampling, batch_seed(sampling.seed, 0), copies, cancelled)
            return
        for number, first in enumerate(range(0, n, self._batch_rows)):
            if cancelled():
                return
            rows = min(self._batch_rows, n - first)
            batch = _Batch(job, prompt_ids, first, rows, job.prompt.stop, job.max_new_tokens)
            self._run(batch, sampling, batch_seed(sampling.seed, number), emit, cancelled)

    def _run(
        self,
        batch: _Batch,
        sampling: Sampling,
        seed: int,
        emit: Callable[[Sample], None],
        cancelled: Callable[[], bool],
    ) -> None:
        input_ids = torch.tensor([batch.prompt_ids] * batch.rows, device=self._device)  # (B, T)
        watcher = _RowWatcher(batch, self._tokenizer, self._eos, emit, cancelled)
        shared: dict[str, Any] = {
            "max_new_tokens": batch.max_new_tokens,
            "pad_token_id": self._pad,
            "eos_token_id": sorted(self._eos) or None,
        }
        if sampling.greedy:
            config = GenerationConfig(do_sample=False, **shared)  # type: ignore[no-untyped-call]
        else:
            config = GenerationConfig(  # type: ignore[no-untyped-call]
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0,
                **shared,
            )
        extra = self._prompt_cache(batch)
        torch.manual_seed(seed)
        self._model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=config,
            logits_processor=LogitsProcessorList([watcher.recorder]),
            stopping_criteria=StoppingCriteriaList([watcher]),
            **extra,
        )
        watcher.finish_rest()


def _cache_argument(model: Any) -> str | None:
    """The keyword a model's forward takes its KV cache by (``cache`` since transformers 5)."""
    parameters = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    return None


def _with_index(sample: Sample, index: int) -> Sample:
    from dataclasses import replace

    return replace(sample, index=index)
