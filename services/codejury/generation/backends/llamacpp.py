"""The llama.cpp backend: a GGUF model in this process, N samples as parallel sequences.

The engine is llama.cpp's own server, linked into this process by ``xllamacpp`` (prebuilt
manylinux wheels, no compiler). It reads the GGUF's quantized weights as they are, where
transformers de-quantizes them to float32; on CPU, reading the weights is what a step costs.

- **One request per problem and engine** with ``n``: the server evaluates the prompt once
  and copies its KV cache to the other sequences' slots, then decodes every running
  sequence in one batch per step (continuous batching: the problems of a request share the
  batch while slots are free; a problem's samples do not depend on which others ran beside
  it, a test checks).
- **Engines** (``generation.llamacpp_engines``): several servers in this process, each
  with its own threads and KV cache over the same memory-mapped weights; a problem's
  sequences are split across them. On few cores this is how every core decodes: one
  engine's threads wait for each other by spinning, so a core that another process takes
  stalls all of them, while engines of one thread each never wait for each other. Each
  sequence's seed is fixed by its index alone (``plan_rounds``), so the samples are the same
  whatever the number of engines (tested); an engine costs one more prompt evaluation per
  problem.
- **Sampling** as the transformers backend does it: temperature, then top-p over the
  tempered distribution (top-k, min-p and penalties off). The request's seed (folded into
  llama.cpp's 32 bits) seeds the problem's first sequence; llama.cpp gives each further
  sequence its own stream derived from it, so a seeded request repeats itself.
- **Log-probabilities**: each token's under the raw logits (temperature 1, ``n_probs=1``),
  the same quantity the transformers backend records.
- **Stops**: the server is given no stop strings (it would hold tokens back); every streamed
  token is checked here against the prompt's stop rule, a finished sequence is emitted at
  once, and the request is stopped when all its sequences are finished or the caller cancels.
- **Prompts**: the chat template is the GGUF's, rendered by the server (``/apply-template``)
  and tokenized by it (``/tokenize``) on its loopback port, behind a random API key.

Failures are converted here: the package missing, a file llama.cpp cannot read ->
ModelLoadError with the fix; a request the server refuses -> InvalidRequestError.
"""

from __future__ import annotations

import importlib.util
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from codejury.core.cpus import usable_cpus
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
from codejury.generation.backends.hf_loading import ModelSource, resolve_source, revision_of
from codejury.generation.errors import (
    BackendResponseError,
    BackendUnavailableError,
    InvalidRequestError,
    ModelLoadError,
)
from codejury.generation.prompts import Prompt, PromptStyle
from codejury.generation.requests import Sampling

ENGINE = "llamacpp"
PACKAGE = "xllamacpp"
INSTALL_FIX = "pip install 'codejury[serve]' (bin/setup installs it)"
DEFAULT_CONTEXT = 2048  # tokens per sequence when generation.context_length is unset
_SEED_SPACE = 0xFFFFFFFF  # llama.cpp seeds are 32-bit, and 0xFFFFFFFF means "random"
_ENCODED_MAX = 256  # prompts whose token ids are kept (the context check encodes them first)
# Everything llama.cpp would add to plain temperature + top-p sampling, switched off.
_PLAIN_SAMPLING: dict[str, Any] = {
    "samplers": ["temperature", "top_p"],
    "top_k": 0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "dry_multiplier": 0.0,
    "xtc_probability": 0.0,
}


def available() -> bool:
    """Whether the llama.cpp engine is installed (without loading it)."""
    return importlib.util.find_spec(PACKAGE) is not None


def is_gguf_model(settings: GenerationSettings) -> bool:
    """Whether ``generation.model`` names a local GGUF file (the demo, a .gguf path, or a
    directory with ``gguf_file``), decided from the settings alone."""
    model = settings.model.strip()
    if model == "demo" or model.endswith(".gguf"):
        return True
    return settings.gguf_file is not None and Path(model).expanduser().is_dir()


def gguf_file(settings: GenerationSettings) -> tuple[ModelSource, Path]:
    """The GGUF file llama.cpp loads, or ModelLoadError naming the setting and the fix."""
    source = resolve_source(settings)
    if source.kind == "hub":
        raise ModelLoadError(
            f"generation.backend 'llamacpp' loads local GGUF files, and generation.model "
            f"{settings.model!r} is a hub id: download the .gguf file and set "
            "CODEJURY_GENERATION__MODEL to its path, or set CODEJURY_GENERATION__BACKEND="
            "transformers"
        )
    if source.gguf_file is None:
        raise ModelLoadError(
            f"generation.backend 'llamacpp' needs a GGUF file, and generation.model "
            f"{settings.model!r} is a transformers directory: set CODEJURY_GENERATION__MODEL "
            "to a .gguf file (or set generation.gguf_file), or set "
            "CODEJURY_GENERATION__BACKEND=transformers"
        )
    path = Path(source.location) / source.gguf_file
    if not path.is_file():
        raise ModelLoadError(f"generation.gguf_file: {path} does not exist: fix the file name")
    return source, path


def default_threads() -> int:
    """All cores but one: llama.cpp's threads wait for each other by spinning, so a core
    taken by another process (the sandbox, the reranker, this process's own Python) stalls
    every step; measured on 2 shared cores, 2 threads fell to a tenth of 1 thread's rate."""
    return max(1, usable_cpus() - 1)


MAX_DEFAULT_ENGINES = 4  # each engine evaluates the prompt again: past a few, threads serve


def default_engines(threads: int) -> int:
    """As many engines as the usable CPUs hold at ``threads`` each, at most 4."""
    return max(1, min(MAX_DEFAULT_ENGINES, usable_cpus() // max(1, threads)))


def round_seed(seed: int, number: int) -> int:
    """llama.cpp's seed for block ``number`` (of ``generation.batch_rows`` sequences) of a
    problem; the block's sequence k gets this seed + k from llama.cpp."""
    return (seed if number == 0 else seed * 1_000_003 + number) % _SEED_SPACE


@dataclass
class _Row:
    """One sequence of a request as it streams in: its tokens, their bytes and log-probs."""

    tokens: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    done: bool = False

    def text(self, count: int | None = None) -> str:
        return b"".join(self.pieces[:count]).decode("utf-8", errors="replace")

    def covering(self, chars: int) -> int:
        """The fewest leading tokens whose text has at least ``chars`` characters."""
        low, high = 0, len(self.tokens)
        while low < high:
            mid = (low + high) // 2
            if len(self.text(mid)) >= chars:
                high = mid
            else:
                low = mid + 1
        return low


@dataclass(frozen=True, slots=True)
class Round:
    """One request to an engine: ``rows`` sequences of a job, from sample ``first`` on,
    seeded ``seed`` (its sequence k is seeded ``seed + k`` by llama.cpp)."""

    job: Job
    first: int
    rows: int
    seed: int


def plan_rounds(
    jobs: Sequence[Job], n: int, *, greedy: bool, seed: int, block_rows: int, engines: int
) -> list[Round]:
    """The requests that sample ``n`` sequences of every job (pure).

    Sequence i of a problem belongs to block i // ``block_rows``, seeded
    ``round_seed(seed, block)``, and is that block's sequence i % ``block_rows``. A block is
    split into at most ``engines`` requests of consecutive sequences, each seeded at its
    first sequence, so every sequence gets the seed it would have in one request for the
    whole block: the samples do not depend on the number of engines.
    """
    if greedy:  # one sequence, handed out n times
        return [Round(job, 0, 1, round_seed(seed, 0)) for job in jobs]
    rounds = []
    for job in jobs:
        for number, start in enumerate(range(0, n, block_rows)):
            size = min(block_rows, n - start)
            parts = min(max(1, engines), size)
            base, offset = round_seed(seed, number), 0
            for part in range(parts):
                rows = size // parts + (1 if part < size % parts else 0)
                rounds.append(Round(job, start + offset, rows, (base + offset) % _SEED_SPACE))
                offset += rows
    return rounds


@dataclass
class _Engine:
    """One llama.cpp server of the backend and the sequences it is decoding now."""

    server: Any
    http: httpx.Client
    active: int = 0


class LlamaCppBackend(GenerationBackend):
    def __init__(self, settings: GenerationSettings) -> None:
        source, path = gguf_file(settings)
        try:
            import xllamacpp
        except ImportError as exc:
            raise ModelLoadError(
                f"generation.backend 'llamacpp' needs the {PACKAGE} package ({exc}): "
                f"{INSTALL_FIX}, or set CODEJURY_GENERATION__BACKEND=transformers"
            ) from exc
        self._block_rows = settings.batch_rows
        threads = settings.llamacpp_threads or default_threads()
        self.engines = min(
            settings.llamacpp_engines or default_engines(threads), settings.batch_rows
        )
        # batch_rows sequences at once in all: each engine's share of the slots
        self._slots = -(-settings.batch_rows // self.engines)
        per_sequence = settings.context_length or DEFAULT_CONTEXT
        self._engines: list[_Engine] = []
        self._engines_lock = threading.Lock()
        try:
            for _ in range(self.engines):
                self._engines.append(_start_engine(xllamacpp, settings, path, self._slots, threads))
        except BaseException:
            self.close()
            raise
        self._encoded: dict[Prompt, list[int]] = {}
        self._encoded_lock = threading.Lock()
        try:
            served = self._call("GET", "/v1/models", None)["data"][0]
            has_chat = bool(self._call("GET", "/props", None).get("chat_template"))
        except (BackendResponseError, KeyError, IndexError, TypeError) as exc:
            self.close()
            raise ModelLoadError(
                f"llama.cpp loaded {path} but does not describe it: {exc}"
            ) from exc
        trained = (served.get("meta") or {}).get("n_ctx_train")
        self.info = ModelInfo(
            name=settings.model_name or source.name,
            revision=settings.model_revision or revision_of(source, None),
            context_length=min(per_sequence, trained)
            if isinstance(trained, int) and trained > 0
            else per_sequence,
            has_chat_template=has_chat,
            engine=ENGINE,
        )

    def close(self) -> None:
        engines, self._engines = self._engines, []
        for engine in engines:
            engine.http.close()
            engine.server = None  # the server's main loop stops when it is released

    # -- prompts ---------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            response = self._engines[0].http.request(method, path, json=body)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendResponseError(
                f"llama.cpp's {method} {path} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(answer, dict):
            raise BackendResponseError(f"llama.cpp's {method} {path} did not answer an object")
        return answer

    def encode(self, prompt: Prompt) -> list[int]:
        """The prompt's token ids: the chat template applied (chat style) or the text."""
        with self._encoded_lock:
            cached = self._encoded.get(prompt)
        if cached is not None:
            return cached
        if prompt.style is PromptStyle.CHAT:
            answer = self._call("POST", "/apply-template", {"messages": prompt.chat_dicts()})
            text = str(answer["prompt"])
            special = False  # the template wrote the special tokens itself
        else:
            text, special = prompt.text, True
        answer = self._call(
            "POST", "/tokenize", {"content": text, "add_special": special, "parse_special": True}
        )
        ids = [int(t) for t in answer["tokens"]]
        with self._encoded_lock:
            if len(self._encoded) >= _ENCODED_MAX:
                self._encoded.clear()
            self._encoded[prompt] = ids
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
        rounds = plan_rounds(
            jobs,
            n,
            greedy=sampling.greedy,
            seed=sampling.seed,
            block_rows=self._block_rows,
            engines=self.engines,
        )
        # As many requests at once as the engines' slots hold: a problem's rounds, or several.
        most = max((r.rows for r in rounds), default=1)
        workers = max(1, self.engines * max(1, self._slots // most))

        def work(emit: Emit, cancelled: Callable[[], bool]) -> None:
            def handed_out(sample: Sample) -> None:
                if not sampling.greedy:
                    emit(sample)
                    return
                for index in range(n):  # greedy: one sequence, n copies
                    emit(replace(sample, index=index))

            failed = threading.Event()

            def stopping() -> bool:
                return failed.is_set() or cancelled()

            with ThreadPoolExecutor(workers, thread_name_prefix="llamacpp") as pool:
                futures = [
                    pool.submit(self._run, r, sampling, handed_out, stopping) for r in rounds
                ]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    failed.set()  # the other requests end at their next token
                    raise

        return stream_from_worker(work, cancel, name="llamacpp-generation")

    @contextmanager
    def _engine_for(self, rows: int) -> Iterator[_Engine]:
        """The engine decoding the fewest sequences, counting ``rows`` more while in use."""
        with self._engines_lock:
            engine = min(self._engines, key=lambda e: e.active)
            engine.active += rows
        try:
            yield engine
        finally:
            with self._engines_lock:
                engine.active -= rows

    def _run(
        self,
        work: Round,
        sampling: Sampling,
        emit: Callable[[Sample], None],
        cancelled: Callable[[], bool],
    ) -> None:
        """One request of ``work.rows`` sequences, each emitted when its stop rule is met."""
        if cancelled():
            return
        job = work.job
        prompt_ids = self.encode(job.prompt)
        rule = job.prompt.stop
        rows = [_Row() for _ in range(work.rows)]
        errors: list[Any] = []

        def finish(index: int, reason: FinishReason) -> None:
            row = rows[index]
            row.done = True
            if reason == "eos":  # the end-of-sequence token is not part of the text
                del row.tokens[-1:], row.pieces[-1:], row.logprobs[-1:]
            text = row.text()
            kept = len(row.tokens)
            at = rule.cut(text) if reason == "stop" else None
            if at is not None:
                text = text[:at]
                kept = row.covering(len(text))
            emit(
                Sample(
                    problem=job.problem,
                    index=work.first + index,
                    text=text,
                    prompt_tokens=len(prompt_ids),
                    completion_tokens=kept,
                    logprob_sum=float(sum(row.logprobs[:kept])),
                    finish_reason=reason,
                    token_ids=tuple(row.tokens[:kept]),
                )
            )

        def on_chunk(chunk: dict[str, Any]) -> bool:
            """Called by the server for every streamed piece; True stops the request."""
            if "error" in chunk:
                errors.append(chunk["error"])
                return True
            for choice in chunk.get("choices") or ():
                index = int(choice.get("index", 0))
                row = rows[index]
                if row.done:
                    continue
                for token in (choice.get("logprobs") or {}).get("content") or ():
                    row.tokens.append(int(token["id"]))
                    row.pieces.append(bytes(token.get("bytes") or ()))
                    row.logprobs.append(float(token["logprob"]))
                reason = choice.get("finish_reason")
                if rule.cut(row.text()) is not None:
                    finish(index, "stop")
                elif reason == "stop":  # no stop strings were sent: an end-of-sequence token
                    finish(index, "eos")
                elif reason is not None or len(row.tokens) >= job.max_new_tokens:
                    finish(index, "length")
            return cancelled() or all(row.done for row in rows)

        body: dict[str, Any] = {
            **_PLAIN_SAMPLING,
            "prompt": prompt_ids,
            "n": work.rows,
            "max_tokens": job.max_new_tokens,
            "temperature": 0.0 if sampling.greedy else sampling.temperature,
            "top_p": 1.0 if sampling.greedy else sampling.top_p,
            "seed": work.seed,
            "n_probs": 1,
            "stream": True,
            # A prompt reused from a slot's cache is re-entered one token at a time, which
            # rounds differently from the whole prompt: no reuse, so a seed repeats exactly.
            "cache_prompt": False,
        }
        try:
            with self._engine_for(work.rows) as engine:
                engine.server.handle_completions(body, on_chunk)
        except Exception as exc:
            raise BackendResponseError(
                f"problems[{job.problem}]: llama.cpp failed: {type(exc).__name__}: {exc}"
            ) from exc
        if errors:
            raise _converted(errors[0], job)
        for index, row in enumerate(rows):  # cancelled, or the stream ended early
            if not row.done:
                finish(index, "length")


def _start_engine(
    xllamacpp: Any, settings: GenerationSettings, path: Path, slots: int, threads: int
) -> _Engine:
    """One llama.cpp server on ``path`` with ``slots`` sequences and its loopback client."""
    key = secrets.token_urlsafe(24)
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_parallel = slots
    # A KV cache per slot, each with room for one sequence's whole context. (One shared
    # cache would place a sequence's cells by what else runs, and its sums, so its
    # samples, would change with the other requests.)
    params.n_ctx = slots * (settings.context_length or DEFAULT_CONTEXT)
    params.kv_unified = False
    params.cont_batching = True
    params.warmup = False
    params.verbosity = 0  # llama.cpp logs nothing; failures are raised and converted
    params.api_keys = [key]  # the server's loopback HTTP port answers this process only
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    try:
        server = xllamacpp.Server(params)
    except Exception as exc:  # llama.cpp says only that the server did not start
        raise ModelLoadError(
            f"generation.model {settings.model!r} ({path}) did not load in llama.cpp: "
            f"{type(exc).__name__}: {exc}: check that the file is a complete GGUF model of "
            "an architecture llama.cpp supports, or set CODEJURY_GENERATION__BACKEND="
            "transformers"
        ) from exc
    http = httpx.Client(
        base_url=str(server.listening_address),
        headers={"Authorization": f"Bearer {key}"},
        timeout=60.0,
    )
    return _Engine(server, http)


def _converted(error: Any, job: Job) -> Exception:
    """The server's error object as this package's error (400: the request; else the server)."""
    details = error if isinstance(error, dict) else {"message": str(error)}
    message = f"problems[{job.problem}]: llama.cpp refused it: {details.get('message', details)}"
    code = details.get("code")
    if code == 400:
        return InvalidRequestError(message)
    if code == 503:
        return BackendUnavailableError(message)
    return BackendResponseError(message)
