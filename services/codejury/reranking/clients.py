"""Scorers that call a KServe endpoint: gRPC v2 (what the Rank service uses), REST v2, v1.

Each is a ``Scorer``: one call per request, scores in candidate order, and the version
the server says produced them. Transport errors are converted here, once:

    INVALID_ARGUMENT / HTTP 400        -> InvalidRequestError   (the request's fault)
    NOT_FOUND / HTTP 404               -> VersionNotServedError (wrong model name)
    UNAVAILABLE, DEADLINE_EXCEEDED,
    refused connections / HTTP 503     -> EndpointUnavailableError (retry later)
    anything else                      -> ModelServerError
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import httpx
import numpy as np
from kserve.protocol.grpc import (  # type: ignore[import-untyped]
    grpc_predict_v2_pb2,
    grpc_predict_v2_pb2_grpc,
)

from codejury.core.grpc import open_channel
from codejury.core.tracing import NO_TRACING, Tracing, grpc_metadata
from codejury.reranking import wire
from codejury.reranking.errors import (
    EndpointUnavailableError,
    InvalidRequestError,
    ModelServerError,
    RerankingError,
    VersionNotServedError,
)
from codejury.reranking.model_server import MAX_MESSAGE_BYTES
from codejury.reranking.scoring import Scored

_TEMPORARY_CODES = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


def error_for_grpc(code: grpc.StatusCode, details: str, *, where: str) -> RerankingError:
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequestError(details)
    if code == grpc.StatusCode.NOT_FOUND:
        return VersionNotServedError(f"{where}: {details}: check reranking.model_name")
    if code in _TEMPORARY_CODES:
        return EndpointUnavailableError(f"{where} did not answer ({code.name}: {details})")
    return ModelServerError(f"{where} answered {code.name}: {details}")


def error_for_http(status: int, details: str, *, where: str) -> RerankingError:
    if status == 400:
        return InvalidRequestError(details)
    if status == 404:
        return VersionNotServedError(f"{where}: {details}: check reranking.model_name")
    if status in (429, 502, 503, 504):
        return EndpointUnavailableError(f"{where} did not answer (HTTP {status}: {details})")
    return ModelServerError(f"{where} answered HTTP {status}: {details}")


class GrpcV2Scorer:
    """Open Inference Protocol v2 over gRPC to ``address`` (host:port). Traced, each call
    is a client span whose context travels in the call's metadata (``traceparent``), for
    a model server that traces to continue."""

    _METHOD = "inference.GRPCInferenceService/ModelInfer"

    def __init__(
        self,
        address: str,
        *,
        model_name: str,
        timeout_s: float,
        tracing: Tracing = NO_TRACING,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.address = address
        self._tracing = tracing
        self._model_name = model_name
        self._timeout_s = timeout_s
        self._where = f"KServe gRPC endpoint {address}"
        # credentials: TLS (mTLS when they carry a client certificate); else plain text
        self._channel = open_channel(address, credentials, max_message_bytes=MAX_MESSAGE_BYTES)
        self._stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(self._channel)

    def score(self, prompt: str, candidates: Sequence[str]) -> Scored:
        with self._tracing.span(
            self._METHOD,
            kind="client",
            attributes={
                "rpc.system": "grpc",
                "rpc.service": "inference.GRPCInferenceService",
                "rpc.method": "ModelInfer",
                "server.address": self.address,
                "codejury.model_name": self._model_name,
                "codejury.candidates": len(candidates),
            },
        ) as span:
            scored = self._score(prompt, candidates)
            span.set({"codejury.reranker_version": scored.version})
            return scored

    def _score(self, prompt: str, candidates: Sequence[str]) -> Scored:
        request = grpc_predict_v2_pb2.ModelInferRequest(model_name=self._model_name)
        for name, texts in ((wire.PROMPT, [prompt]), (wire.CANDIDATES, list(candidates))):
            tensor = request.inputs.add(name=name, datatype="BYTES", shape=[len(texts)])
            tensor.contents.bytes_contents.extend(t.encode() for t in texts)
        try:
            response = self._stub.ModelInfer(
                request, timeout=self._timeout_s, metadata=grpc_metadata(self._tracing)
            )
        except grpc.RpcError as exc:
            raise error_for_grpc(exc.code(), exc.details() or "", where=self._where) from exc
        outputs = [o for o in response.outputs if o.name == wire.SCORES]
        if len(outputs) != 1:
            raise ModelServerError(f"{self._where}: no {wire.SCORES!r} output in the answer")
        values: Sequence[float] = outputs[0].contents.fp64_contents
        if not values and response.raw_output_contents:  # a server that answers in binary
            values = np.frombuffer(response.raw_output_contents[0], dtype="<f8").tolist()
        return wire.checked_scores(
            list(values), response.model_version, len(candidates), where=self._where
        )

    def ready(self, timeout_s: float) -> bool:
        """Whether the model answers ModelReady within ``timeout_s``."""
        try:
            answer = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(self._channel).ModelReady(
                grpc_predict_v2_pb2.ModelReadyRequest(name=self._model_name), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
        return bool(answer.ready)

    def close(self) -> None:
        self._channel.close()


class _RestScorer:
    def __init__(self, base_url: str, *, model_name: str, timeout_s: float) -> None:
        self._model_name = model_name
        self._where = f"KServe REST endpoint {base_url}"
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            response = self._client.post(path, json=body)
        except httpx.TransportError as exc:
            raise EndpointUnavailableError(f"{self._where} did not answer ({exc})") from exc
        if response.status_code != 200:
            try:
                details = str(response.json().get("error", response.text))
            except ValueError:
                details = response.text
            raise error_for_http(response.status_code, details, where=self._where)
        return response.json()

    def close(self) -> None:
        self._client.close()


class RestV2Scorer(_RestScorer):
    """Open Inference Protocol v2 over REST: ``POST /v2/models/<name>/infer``."""

    def score(self, prompt: str, candidates: Sequence[str]) -> Scored:
        body = self._post(
            f"/v2/models/{self._model_name}/infer", wire.v2_rest_body(prompt, candidates)
        )
        return wire.scores_from_v2_rest(body, len(candidates), where=self._where)


class RestV1Scorer(_RestScorer):
    """KServe v1 over REST: ``POST /v1/models/<name>:predict``, one instance per pair."""

    def score(self, prompt: str, candidates: Sequence[str]) -> Scored:
        body = self._post(
            f"/v1/models/{self._model_name}:predict", wire.v1_body(prompt, candidates)
        )
        return wire.scores_from_v1(body, len(candidates), where=self._where)
