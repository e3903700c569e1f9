"""The reranker's contract on KServe's protocols, encoded by clients and decoded by the model.

Open Inference Protocol v2 (REST and gRPC), one request per problem::

    inputs:  "prompt"      BYTES [1]   the problem prompt
             "candidates"  BYTES [N]   the candidate programs
    outputs: "scores"      FP64  [N]   one score per candidate, same order
    model_version                      the reranker version that produced the scores

KServe v1 (REST), one instance per pair::

    {"instances": [{"prompt": "...", "candidate": "..."}, ...]}
    -> {"predictions": [score, ...], "model_name": ..., "model_version": ...}

Decoding on the model side raises InvalidRequestError (the caller's fault); decoding an
answer on the client side raises ModelServerError (the server's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codejury.reranking.errors import InvalidRequestError, ModelServerError
from codejury.reranking.scoring import Scored

PROMPT = "prompt"
CANDIDATES = "candidates"
SCORES = "scores"


# -- model side ----------------------------------------------------------------------


def _texts(values: Any, *, name: str) -> list[str]:
    texts = []
    for value in values:
        if isinstance(value, bytes):
            try:
                texts.append(value.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InvalidRequestError(f"input {name!r}: an element is not UTF-8") from exc
        elif isinstance(value, str):
            texts.append(value)
        else:
            raise InvalidRequestError(
                f"input {name!r}: expected strings (datatype BYTES), got {type(value).__name__}"
            )
    return texts


def decode_v2_inputs(inputs: Mapping[str, tuple[str, Any]]) -> tuple[str, list[str]]:
    """(prompt, candidates) from v2 inputs given as ``{name: (datatype, flat values)}``."""
    for name in (PROMPT, CANDIDATES):
        if name not in inputs:
            raise InvalidRequestError(
                f"input {name!r} is missing: send {PROMPT!r} BYTES [1] and {CANDIDATES!r} BYTES [N]"
            )
        datatype = inputs[name][0]
        if datatype != "BYTES":
            raise InvalidRequestError(f"input {name!r} must be BYTES, got {datatype}")
    unknown = sorted(set(inputs) - {PROMPT, CANDIDATES})
    if unknown:
        raise InvalidRequestError(
            f"unknown input(s) {', '.join(unknown)}: send only {PROMPT!r} and {CANDIDATES!r}"
        )
    prompt = _texts(inputs[PROMPT][1], name=PROMPT)
    if len(prompt) != 1:
        raise InvalidRequestError(f"input {PROMPT!r} must hold 1 string, got {len(prompt)}")
    candidates = _texts(inputs[CANDIDATES][1], name=CANDIDATES)
    if not candidates:
        raise InvalidRequestError(f"input {CANDIDATES!r} is empty: send at least one candidate")
    return prompt[0], candidates


def decode_v1_instances(body: Any) -> list[tuple[str, str]]:
    """(prompt, candidate) pairs from a v1 body."""
    instances = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(instances, list) or not instances:
        raise InvalidRequestError(
            'the v1 body needs a non-empty "instances" list of {"prompt": ..., "candidate": ...}'
        )
    pairs = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InvalidRequestError(f"instances[{i}] must be an object")
        prompt, candidate = instance.get(PROMPT), instance.get("candidate")
        if not isinstance(prompt, str) or not isinstance(candidate, str):
            raise InvalidRequestError(
                f'instances[{i}] needs string fields "prompt" and "candidate"'
            )
        pairs.append((prompt, candidate))
    return pairs


# -- client side ---------------------------------------------------------------------


def v2_rest_body(prompt: str, candidates: Sequence[str]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": PROMPT, "shape": [1], "datatype": "BYTES", "data": [prompt]},
            {
                "name": CANDIDATES,
                "shape": [len(candidates)],
                "datatype": "BYTES",
                "data": list(candidates),
            },
        ]
    }


def v1_body(prompt: str, candidates: Sequence[str]) -> dict[str, Any]:
    return {"instances": [{PROMPT: prompt, "candidate": c} for c in candidates]}


def checked_scores(scores: Sequence[Any], version: Any, expected: int, *, where: str) -> Scored:
    if not isinstance(version, str) or not version:
        raise ModelServerError(f"{where}: the answer does not name the model version")
    if len(scores) != expected:
        raise ModelServerError(f"{where}: {len(scores)} scores for {expected} candidates")
    try:
        return Scored(tuple(float(s) for s in scores), version)
    except (TypeError, ValueError) as exc:
        raise ModelServerError(f"{where}: the scores are not numbers") from exc


def scores_from_v2_rest(body: Any, expected: int, *, where: str) -> Scored:
    try:
        (output,) = [o for o in body["outputs"] if o["name"] == SCORES]
        data = output["data"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelServerError(f"{where}: no {SCORES!r} output in the v2 answer") from exc
    return checked_scores(data, body.get("model_version"), expected, where=where)


def scores_from_v1(body: Any, expected: int, *, where: str) -> Scored:
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list):
        raise ModelServerError(f"{where}: no predictions in the v1 answer")
    return checked_scores(predictions, body.get("model_version"), expected, where=where)
