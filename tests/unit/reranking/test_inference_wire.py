"""The tensor contract on KServe's protocols: what the model accepts and the clients read."""

from __future__ import annotations

import pytest
from codejury.reranking import wire
from codejury.reranking.errors import InvalidRequestError, ModelServerError


def test_v2_inputs_decode_bytes_and_strings() -> None:
    prompt, candidates = wire.decode_v2_inputs(
        {"prompt": ("BYTES", [b"def f():"]), "candidates": ("BYTES", ["a", "b\u00e9".encode()])}
    )
    assert (prompt, candidates) == ("def f():", ["a", "b\u00e9"])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"candidates": ("BYTES", ["a"])}, "input 'prompt' is missing"),
        ({"prompt": ("FP32", []), "candidates": ("BYTES", ["a"])}, "must be BYTES, got FP32"),
        ({"prompt": ("BYTES", ["p", "q"]), "candidates": ("BYTES", ["a"])}, "1 string, got 2"),
        ({"prompt": ("BYTES", ["p"]), "candidates": ("BYTES", [])}, "'candidates' is empty"),
        ({"prompt": ("BYTES", ["p"]), "candidates": ("BYTES", [b"\xff"])}, "not UTF-8"),
        (
            {"prompt": ("BYTES", ["p"]), "candidates": ("BYTES", ["a"]), "x": ("BYTES", [])},
            "unknown input",
        ),
    ],
)
def test_bad_v2_inputs(inputs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidRequestError, match=message):
        wire.decode_v2_inputs(inputs)


def test_v1_instances_round_trip_and_reject_bad_shapes() -> None:
    body = wire.v1_body("p", ["a", "b"])
    assert wire.decode_v1_instances(body) == [("p", "a"), ("p", "b")]
    for bad in ({}, {"instances": []}, {"instances": ["x"]}, {"instances": [{"prompt": 1}]}):
        with pytest.raises(InvalidRequestError):
            wire.decode_v1_instances(bad)


def test_answers_must_name_the_version_and_match_the_candidates() -> None:
    ok = {"outputs": [{"name": "scores", "data": [0.5, 1]}], "model_version": "v1"}
    scored = wire.scores_from_v2_rest(ok, 2, where="e")
    assert (scored.scores, scored.version) == ((0.5, 1.0), "v1")
    with pytest.raises(ModelServerError, match=r"does not name the model version"):
        wire.scores_from_v2_rest({**ok, "model_version": None}, 2, where="e")
    with pytest.raises(ModelServerError, match=r"2 scores for 3 candidates"):
        wire.scores_from_v2_rest(ok, 3, where="e")
    with pytest.raises(ModelServerError, match=r"no predictions"):
        wire.scores_from_v1({"x": 1}, 1, where="e")
