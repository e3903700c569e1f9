"""The reward model as a ``kserve.Model``: Open Inference Protocol v2 (REST, gRPC) and v1.

KServe hands ``predict`` an ``InferRequest`` for v2 (REST and gRPC alike) and the JSON
body for v1; both name the reranker version in the answer. Scoring runs on the event
loop's executor so the servers keep answering health checks meanwhile. Our request
errors become KServe's ``InvalidInput`` here, once: HTTP 400 / gRPC INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from kserve import InferOutput, InferRequest, InferResponse, Model  # type: ignore[import-untyped]
from kserve.errors import InvalidInput  # type: ignore[import-untyped]

from codejury.reranking import wire
from codejury.reranking.errors import InvalidRequestError
from codejury.reranking.model import RewardModel


class RerankerModel(Model):  # type: ignore[misc]
    """One reranker version behind KServe; ``load`` reads the weights."""

    def __init__(
        self, name: str, version: str, loader: Callable[[], RewardModel], *, max_candidates: int
    ) -> None:
        super().__init__(name)
        self.version = version
        self._loader = loader
        self._max_candidates = max_candidates
        self._reward: RewardModel | None = None

    def load(self) -> bool:
        self._reward = self._loader()  # CorruptVersionError propagates to the entry point
        self.ready = True
        return True

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse | dict[str, Any]:
        try:
            if isinstance(payload, InferRequest):
                return await self._predict_v2(payload)
            return await self._predict_v1(payload)
        except InvalidRequestError as exc:
            raise InvalidInput(str(exc)) from exc

    async def _score(self, prompt: str, candidates: Sequence[str]) -> list[float]:
        if self._reward is None:
            raise InvalidRequestError(f"model {self.name!r} is not loaded yet: retry shortly")
        if len(candidates) > self._max_candidates:
            raise InvalidRequestError(
                f"{len(candidates)} candidates, over the limit of {self._max_candidates} "
                "(reranking.max_candidates): split the request"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._reward.score, prompt, list(candidates))

    async def _predict_v2(self, request: InferRequest) -> InferResponse:
        inputs: dict[str, tuple[str, Any]] = {}
        for tensor in request.inputs:
            values: Any = []
            if tensor.datatype == "BYTES":
                try:
                    values = tensor.as_numpy().ravel().tolist()
                except ValueError as exc:
                    raise InvalidRequestError(
                        f"input {tensor.name!r}: data does not match shape {tensor.shape}"
                    ) from exc
            inputs[tensor.name] = (tensor.datatype, values)
        prompt, candidates = wire.decode_v2_inputs(inputs)
        scores = await self._score(prompt, candidates)
        return InferResponse(
            response_id=request.id or uuid.uuid4().hex,
            model_name=self.name,
            model_version=self.version,
            infer_outputs=[InferOutput(wire.SCORES, [len(scores)], "FP64", data=scores)],
        )

    async def _predict_v1(self, body: Any) -> dict[str, Any]:
        pairs = wire.decode_v1_instances(body)
        if len(pairs) > self._max_candidates:
            raise InvalidRequestError(
                f"{len(pairs)} instances, over the limit of {self._max_candidates} "
                "(reranking.max_candidates): split the request"
            )
        by_prompt: dict[str, list[int]] = {}
        for i, (prompt, _) in enumerate(pairs):
            by_prompt.setdefault(prompt, []).append(i)
        predictions = [0.0] * len(pairs)
        for prompt, indices in by_prompt.items():  # one batched call per distinct prompt
            scores = await self._score(prompt, [pairs[i][1] for i in indices])
            for i, score in zip(indices, scores, strict=True):
                predictions[i] = score
        return {"predictions": predictions, "model_name": self.name, "model_version": self.version}
