"""The OpenAI-compatible backend against a small server, written here, that speaks the API
(/v1/models, /v1/completions with n, /v1/chat/completions) the way vLLM does."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from codejury.core.errors import (
    ConfigurationError,
    FailedPreconditionError,
    InvalidArgumentError,
    TemporaryError,
)
from codejury.core.settings import GenerationSettings
from codejury.generation.backends.openai_http import OpenAIBackend
from codejury.generation.errors import BackendResponseError
from codejury.generation.generator import Generator
from codejury.proto.v1 import domain_pb2

TOKEN_LOGPROB = -0.25


@dataclass
class Served:
    """What the fake server answers, and what it was asked."""

    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    apply_stop: bool = True  # vLLM applies `stop`; a server that does not must be cut by us
    fail_with: tuple[int, Any] | None = None  # (status, body) for the next request
    authorizations: list[str | None] = field(default_factory=list)  # each request's header


def completion_tokens(seed: int, index: int) -> list[str]:
    return ["    return", f" x + {seed % 100}", f" * {index}", "\n", "\ndef", " other():", "\n"]


def chat_tokens(seed: int, index: int) -> list[str]:
    return ["Sure:\n", "```python\n", "def f(x):\n", f"    return x * {index}\n", "```\n", "Bye."]


def choice(tokens: list[str], index: int, stops: list[str], apply_stop: bool) -> dict[str, Any]:
    text = "".join(tokens)
    finish, reason = "length", None
    if apply_stop:
        hits = [(text.find(s), s) for s in stops if s in text]
        if hits:
            at, reason = min(hits)
            text, finish = text[:at], "stop"
    kept, offsets, offset = [], [], 0
    for token in tokens:
        if offset >= len(text):
            break
        kept.append(token)
        offsets.append(offset)
        offset += len(token)
    return {
        "index": index,
        "text": text,
        "finish_reason": finish,
        "stop_reason": reason,
        "logprobs": {
            "tokens": kept,
            "token_logprobs": [TOKEN_LOGPROB] * len(kept),
            "text_offset": offsets,
        },
    }


def make_handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: Any) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def failing(self) -> bool:
            if served.fail_with is None:
                return False
            status, body = served.fail_with
            served.fail_with = None
            self.answer(status, body)
            return True

        def do_GET(self) -> None:
            served.requests.append((self.path, {}))
            served.authorizations.append(self.headers.get("Authorization"))
            if self.path == "/v1/models":
                models = [
                    {"id": "tiny-served", "root": "/models/tiny@abc123", "max_model_len": 2048}
                ]
                self.answer(200, {"object": "list", "data": models})
            else:
                self.answer(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            served.requests.append((self.path, body))
            served.authorizations.append(self.headers.get("Authorization"))
            if self.failing():
                return
            n, seed = body["n"], body.get("seed", 0)
            if self.path == "/v1/completions":
                choices = [
                    choice(completion_tokens(seed, i), i, body.get("stop", []), served.apply_stop)
                    for i in range(n)
                ]
            elif self.path == "/v1/chat/completions":
                choices = []
                for i in range(n):
                    tokens = chat_tokens(seed, i)
                    content = [{"token": t, "logprob": TOKEN_LOGPROB} for t in tokens]
                    choices.append(
                        {
                            "index": i,
                            "message": {"role": "assistant", "content": "".join(tokens)},
                            "finish_reason": "stop",
                            "logprobs": {"content": content},
                        }
                    )
            else:
                self.answer(404, {"error": {"message": "unknown path"}})
                return
            choices.reverse()  # the order of choices is the server's; `index` is what counts
            self.answer(200, {"choices": choices, "usage": {"prompt_tokens": 11}})

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    served = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(served))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def settings(url: str, **fields: Any) -> GenerationSettings:
    return GenerationSettings(backend="openai", openai_base_url=url, **fields)  # type: ignore[arg-type]


def generator(url: str, **fields: Any) -> Generator:
    config = settings(url, **fields)
    return Generator(OpenAIBackend(config), config)


PROBLEM = domain_pb2.Problem(
    problem_id="add", language="python", prompt="def f(x):\n", stop_sequences=["\ndef", "\n#"]
)


def test_the_api_key_is_sent_as_a_bearer_token_and_never_shown(
    server: tuple[str, Served],
) -> None:
    url, served = server
    config = settings(url, openai_api_key="sk-5c1f0e")
    assert "sk-5c1f0e" not in repr(config) + str(config) + config.model_dump_json()
    Generator(OpenAIBackend(config), config).generate(
        [PROBLEM], 2, domain_pb2.SamplingParams(seed=3), request_key="r"
    )
    assert served.authorizations and set(served.authorizations) == {"Bearer sk-5c1f0e"}


def test_n_candidates_per_problem_cut_at_the_first_stop_with_the_models_logprobs(
    server: tuple[str, Served],
) -> None:
    url, served = server
    gen = generator(url, openai_concurrency=2)
    assert gen.backend.info.name == "tiny-served"
    assert gen.backend.info.revision == "/models/tiny@abc123"
    assert gen.backend.info.context_length == 2048
    problems = [PROBLEM, domain_pb2.Problem(problem_id="b", language="py", prompt="x = 1\n")]
    params = domain_pb2.SamplingParams(temperature=0.6, top_p=0.9, max_new_tokens=64, seed=42)
    candidates = gen.generate(problems, 3, params, request_key="req")
    assert [(c.problem_id, c.index) for c in candidates] == [
        (p, i) for p in ("add", "b") for i in range(3)
    ]
    first = candidates[0]
    assert first.completion == "    return x + 42 * 0\n"
    assert first.finish_reason == "stop" and first.completion_tokens == 4
    assert first.logprob_sum == pytest.approx(4 * TOKEN_LOGPROB)
    assert first.logprob_mean == pytest.approx(TOKEN_LOGPROB)
    assert first.prompt_tokens == 11 and first.model_name == "tiny-served"
    assert first.sampling.seed == 42 and first.candidate_id == "req-0-0"
    # The second problem has no stop sequences of its own: the language's are sent.
    posts = {body["prompt"]: body for path, body in served.requests if path == "/v1/completions"}
    assert posts["def f(x):\n"]["stop"] == ["\ndef", "\n#"]
    assert posts["x = 1\n"]["stop"] == list(PROBLEM_STOPS)
    assert {b["n"] for b in posts.values()} == {3} and posts["x = 1\n"]["logprobs"] == 1
    assert posts["x = 1\n"]["temperature"] == pytest.approx(0.6)
    assert posts["x = 1\n"]["max_tokens"] == 64 and posts["x = 1\n"]["seed"] == 42


PROBLEM_STOPS = ("\ndef ", "\n#", "\nif ", "\nclass ", "\nprint(")


def test_a_server_that_ignores_stop_is_cut_here(server: tuple[str, Served]) -> None:
    url, served = server
    served.apply_stop = False
    (candidate,) = generator(url).generate(
        [PROBLEM], 1, domain_pb2.SamplingParams(seed=5), request_key="r"
    )
    assert candidate.completion == "    return x + 5 * 0\n"
    assert candidate.finish_reason == "stop" and candidate.completion_tokens == 4


def test_greedy_asks_for_one_and_hands_out_n_copies(server: tuple[str, Served]) -> None:
    url, served = server
    candidates = generator(url).generate(
        [PROBLEM], 4, domain_pb2.SamplingParams(greedy=True, seed=3), request_key="r"
    )
    assert [c.index for c in candidates] == [0, 1, 2, 3]
    assert len({c.completion for c in candidates}) == 1
    (post,) = [body for path, body in served.requests if path == "/v1/completions"]
    assert post["n"] == 1 and post["temperature"] == 0.0


def test_chat_style_uses_chat_completions_and_extracts_the_function(
    server: tuple[str, Served],
) -> None:
    url, served = server
    candidates = generator(url, prompt_style="chat").generate(
        [PROBLEM], 2, domain_pb2.SamplingParams(seed=9), request_key="r"
    )
    assert [c.completion for c in candidates] == ["    return x * 0\n", "    return x * 1\n"]
    assert all(c.finish_reason == "stop" for c in candidates)
    # Tokens up to the closing fence: "Sure:\n", "```python\n", "def f(x):\n", the return.
    assert candidates[0].completion_tokens == 4
    (path, body), *_ = [r for r in served.requests if r[0] != "/v1/models"]
    assert path == "/v1/chat/completions" and body["logprobs"] is True
    assert "```python\ndef f(x):\n```" in body["messages"][0]["content"]


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            400,
            {"error": {"message": "This model's maximum context length is 2048 tokens"}},
            InvalidArgumentError,
            r"problems\[0\]: the model server refused it: This model's maximum context length",
        ),
        (503, {"detail": "overloaded"}, TemporaryError, r"answered 503: overloaded"),
        (429, "slow down", TemporaryError, r"answered 429: slow down"),
        (401, {"error": "bad key"}, FailedPreconditionError, r"401: bad key; check .*api_key"),
        (200, "not json", BackendResponseError, r"did not answer JSON"),
        (200, {"choices": []}, BackendResponseError, r"returned 0 choices for n=2"),
    ],
    ids=["400-context", "503", "429", "401", "not-json", "no-choices"],
)
def test_http_failures_become_domain_errors(
    server: tuple[str, Served], status: int, body: Any, kind: type[Exception], message: str
) -> None:
    url, served = server
    gen = generator(url)
    served.fail_with = (status, body)
    with pytest.raises(kind, match=message):
        gen.generate([PROBLEM], 2, domain_pb2.SamplingParams(), request_key="r")


def test_a_server_that_is_down_or_lacks_the_model_stops_start_up(
    server: tuple[str, Served],
) -> None:
    url, _ = server
    with pytest.raises(ConfigurationError, match=r"does not serve 'other'.*tiny-served"):
        OpenAIBackend(settings(url, openai_model="other"))
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    with pytest.raises(ConfigurationError, match=r"is not usable: .*start it or fix the URL"):
        OpenAIBackend(settings(closed, openai_timeout_s=5))
