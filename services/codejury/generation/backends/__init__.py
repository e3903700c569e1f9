"""The one small interface every generator backend implements.

A backend turns prompts into raw samples: ``stream(jobs, n, sampling)`` yields each
``Sample`` as soon as it is finished, ``generate`` collects them in order. What a sample
means for its problem (cutting, extracting the function, ids) is the ``Generator``'s job,
so the backends stay interchangeable:

- ``huggingface.TransformersBackend``: a model in this process (local directory, GGUF file,
  hub id), N samples per problem in one batch;
- ``llamacpp.LlamaCppBackend``: a GGUF model in this process through llama.cpp, N samples
  per problem as parallel sequences sharing the prompt's KV cache (the fast CPU engine);
- ``openai_http.OpenAIBackend``: an OpenAI-compatible server (vLLM, TGI) over HTTP.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from codejury.generation.prompts import Prompt
from codejury.generation.requests import Sampling

FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What candidates record about the model, and what requests are checked against."""

    name: str
    revision: str
    context_length: int | None  # None: unknown, not checked here (the server checks)
    has_chat_template: bool
    # The engine, where the same model and seed sample differently on another one (llamacpp);
    # "" for the engines whose samples were cached before engines were told apart.
    engine: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    """One problem of a request, as the backend sees it."""

    problem: int  # the problem's position in the request
    prompt: Prompt
    max_new_tokens: int  # the request's budget, or less where the default had to fit the context


@dataclass(frozen=True, slots=True)
class Sample:
    """One generated text, cut where its prompt's stop rule says it ends."""

    problem: int
    index: int  # 0 .. n-1 within its problem
    text: str
    prompt_tokens: int
    completion_tokens: int  # tokens of ``text`` (the cut-off rest is not counted)
    logprob_sum: float  # log-probability of those tokens under the model (temperature 1)
    finish_reason: FinishReason
    token_ids: tuple[int, ...] = ()  # the tokens of ``text`` where the backend knows them


class GenerationBackend(ABC):
    info: ModelInfo

    @abstractmethod
    def prompt_tokens(self, prompt: Prompt) -> int | None:
        """Tokens the prompt takes, or None when only the server can tell."""

    @abstractmethod
    def stream(
        self,
        jobs: Sequence[Job],
        n: int,
        sampling: Sampling,
        cancel: threading.Event | None = None,
    ) -> Iterator[Sample]:
        """Yield ``n`` samples per job, each as soon as it is finished (in any order).

        Setting ``cancel`` (or closing the iterator) stops the work early.
        """

    def generate(self, jobs: Sequence[Job], n: int, sampling: Sampling) -> list[Sample]:
        """``n`` samples per job, ordered by job then index."""
        return sorted(self.stream(jobs, n, sampling), key=lambda s: (s.problem, s.index))

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release what the backend holds (connections, device memory)."""


Emit = Callable[[Sample], None]


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def stream_from_worker(
    work: Callable[[Emit, Callable[[], bool]], None],
    cancel: threading.Event | None,
    *,
    name: str,
) -> Iterator[Sample]:
    """Run ``work(emit, cancelled)`` in a thread and yield each sample it emits at once.

    ``cancelled()`` turns true when ``cancel`` is set or the consumer stops iterating (the
    work should then end soon); an exception in the work is raised to the consumer.
    """
    out: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def cancelled() -> bool:
        return stop.is_set() or (cancel is not None and cancel.is_set())

    def run() -> None:
        try:
            work(out.put, cancelled)
        except BaseException as exc:  # handed to the consumer, raised there
            out.put(_Failure(exc))
        finally:
            out.put(_DONE)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    try:
        while (item := out.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()
