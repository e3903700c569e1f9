"""The OpenAI-compatible backend: a vLLM or TGI server does the sampling, over HTTP.

Completion-style prompts go to ``/v1/completions`` with ``n`` (one request per problem,
``generation.openai_concurrency`` in flight); chat prompts to ``/v1/chat/completions``.
Both ask for ``logprobs`` so candidates carry the model's log-probabilities, and both
are cut again here with the prompt's stop rule (the server may not know the rule, and
a chat answer is cut where its code block closes).

HTTP failures are converted once, here: no answer, 429 or 5xx -> BackendUnavailableError
(retry later); 400/422 -> InvalidRequestError with the server's reason (e.g. a prompt over
the context); 401/403/404 -> BackendRejectedError (fix the settings).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

import httpx

from codejury.core.settings import GenerationSettings
from codejury.generation.backends import FinishReason, GenerationBackend, Job, ModelInfo, Sample
from codejury.generation.errors import (
    BackendRejectedError,
    BackendResponseError,
    BackendUnavailableError,
    InvalidRequestError,
    ModelLoadError,
)
from codejury.generation.prompts import Prompt, PromptStyle
from codejury.generation.requests import Sampling
from codejury.generation.stopping import StopRule

_MAX_REASON_CHARS = 500
_BAD_REQUEST = {400, 413, 422}
_REJECTED = {401, 403, 404}


class OpenAIBackend(GenerationBackend):
    def __init__(self, settings: GenerationSettings, client: httpx.Client | None = None) -> None:
        headers = (
            {"Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}"}
            if settings.openai_api_key
            else {}
        )
        self._base = settings.openai_base_url.rstrip("/")
        self._client = client or httpx.Client(
            base_url=self._base + "/", timeout=settings.openai_timeout_s, headers=headers
        )
        self._concurrency = settings.openai_concurrency
        try:
            served = self._models()
        except (BackendUnavailableError, BackendRejectedError, BackendResponseError) as exc:
            self._client.close()
            raise ModelLoadError(
                f"the model server at generation.openai_base_url={self._base} is not usable: "
                f"{exc}; start it or fix the URL"
            ) from exc
        model = settings.openai_model or (served[0]["id"] if served else None)
        entry = next((m for m in served if m.get("id") == model), None)
        if model is None or entry is None:
            self._client.close()
            raise ModelLoadError(
                f"the model server at {self._base} does not serve "
                f"{model or 'any model'!r} (it lists {[m.get('id') for m in served]}): "
                "set generation.openai_model to one of them"
            )
        self._model = str(model)
        context = entry.get("max_model_len")
        self.info = ModelInfo(
            name=settings.model_name or self._model,
            revision=settings.model_revision or str(entry.get("root") or ""),
            context_length=settings.context_length
            or (context if isinstance(context, int) else None),
            # The server's chat template cannot be seen from here: `auto` means completion.
            has_chat_template=False,
        )

    def close(self) -> None:
        self._client.close()

    def prompt_tokens(self, prompt: Prompt) -> None:
        return None  # only the server's tokenizer knows; it rejects over-long prompts (400)

    def stream(
        self,
        jobs: Sequence[Job],
        n: int,
        sampling: Sampling,
        cancel: threading.Event | None = None,
    ) -> Iterator[Sample]:
        pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="openai")
        try:
            pending: set[Future[list[Sample]]] = {
                pool.submit(self._sample_job, job, n, sampling) for job in jobs
            }
            while pending:
                if cancel is not None and cancel.is_set():
                    return
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- one problem -----------------------------------------------------------------

    def _sample_job(self, job: Job, n: int, sampling: Sampling) -> list[Sample]:
        rows = 1 if sampling.greedy else n
        body: dict[str, Any] = {
            "model": self._model,
            "n": rows,
            "max_tokens": job.max_new_tokens,
            "temperature": 0.0 if sampling.greedy else sampling.temperature,
            "top_p": 1.0 if sampling.greedy else sampling.top_p,
            "seed": sampling.seed,
        }
        where = f"problems[{job.problem}]"
        if job.prompt.style is PromptStyle.CHAT:
            body.update(messages=job.prompt.chat_dicts(), logprobs=True)
            answer = self._post("chat/completions", body, where)
        else:
            body.update(prompt=job.prompt.text, logprobs=1)
            if job.prompt.stop.sequences:
                body["stop"] = list(job.prompt.stop.sequences)
            answer = self._post("completions", body, where)
        samples = _samples(answer, job, rows)
        if sampling.greedy:
            return [replace(samples[0], index=i) for i in range(n)]
        return samples

    def _models(self) -> list[dict[str, Any]]:
        data = self._request("GET", "models", None, "models").get("data")
        if not isinstance(data, list):
            raise BackendResponseError("GET /models did not return a `data` list")
        return [m for m in data if isinstance(m, dict)]

    def _post(self, path: str, body: dict[str, Any], where: str) -> dict[str, Any]:
        return self._request("POST", path, body, where)

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, where: str
    ) -> dict[str, Any]:
        url = f"{self._base}/{path}"
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TimeoutException as exc:
            raise BackendUnavailableError(f"{method} {url} timed out: {exc}", delay_s=5.0) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailableError(
                f"{method} {url} failed: {type(exc).__name__}: {exc}", delay_s=2.0
            ) from exc
        status = response.status_code
        if status >= 400:
            reason = _reason(response)
            if status in _BAD_REQUEST:
                raise InvalidRequestError(f"{where}: the model server refused it: {reason}")
            if status in _REJECTED:
                raise BackendRejectedError(
                    f"{method} {url} answered {status}: {reason}; check generation.openai_model "
                    "and generation.openai_api_key"
                )
            raise BackendUnavailableError(f"{method} {url} answered {status}: {reason}")
        try:
            answer = response.json()
        except json.JSONDecodeError as exc:
            raise BackendResponseError(f"{method} {url} did not answer JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise BackendResponseError(
                f"{method} {url} answered {type(answer).__name__}, not an object"
            )
        return answer


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except json.JSONDecodeError:
        return response.text[:_MAX_REASON_CHARS]
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or body.get("message") or body.get("detail")
        if message:
            return str(message)[:_MAX_REASON_CHARS]
    return json.dumps(body)[:_MAX_REASON_CHARS]


def _samples(answer: dict[str, Any], job: Job, rows: int) -> list[Sample]:
    """The choices of one answer as samples, cut at the job's stop rule."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or len(choices) != rows:
        raise BackendResponseError(
            f"the model server returned {len(choices) if isinstance(choices, list) else 'no'} "
            f"choices for n={rows}: is it OpenAI-compatible (vLLM, TGI)?"
        )
    usage = answer.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    samples = []
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise BackendResponseError("a choice in the model server's answer is not an object")
        index = choice.get("index", position)
        text, tokens, logprobs = _choice_text(choice)
        samples.append(
            _cut(
                job,
                index=int(index),
                text=text,
                tokens=tokens,
                logprobs=logprobs,
                choice=choice,
                prompt_tokens=prompt_tokens,
            )
        )
    return sorted(samples, key=lambda s: s.index)


def _choice_text(choice: dict[str, Any]) -> tuple[str, list[str], list[float]]:
    """The choice's text, its tokens' texts and their log-probabilities (empty if absent)."""
    message = choice.get("message")
    if isinstance(message, dict):  # chat/completions
        text = message.get("content") or ""
        content = (choice.get("logprobs") or {}).get("content") or []
        tokens = [str(t.get("token", "")) for t in content]
        logprobs = [float(t.get("logprob") or 0.0) for t in content]
    else:  # completions
        text = choice.get("text")
        if not isinstance(text, str):
            raise BackendResponseError("a choice has neither `text` nor `message.content`")
        lp = choice.get("logprobs") or {}
        tokens = [str(t) for t in lp.get("tokens") or []]
        logprobs = [float(v or 0.0) for v in lp.get("token_logprobs") or []]
    return str(text), tokens, logprobs


def _cut(
    job: Job,
    *,
    index: int,
    text: str,
    tokens: list[str],
    logprobs: list[float],
    choice: dict[str, Any],
    prompt_tokens: int,
) -> Sample:
    rule: StopRule = job.prompt.stop
    at = rule.cut(text)
    reason: FinishReason
    if at is not None:
        text, reason = text[:at], "stop"
    elif choice.get("finish_reason") == "length":
        reason = "length"
    else:
        # vLLM names the stop string in `stop_reason`; None there (or no field) means EOS.
        reason = "stop" if isinstance(choice.get("stop_reason"), str) else "eos"
    kept, offset = 0, 0
    for token in tokens:  # the tokens that make up the kept text
        if offset >= len(text):
            break
        offset += len(token)
        kept += 1
    return Sample(
        problem=job.problem,
        index=index,
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=kept if tokens else 0,
        logprob_sum=float(sum(logprobs[:kept])),
        finish_reason=reason,
    )
