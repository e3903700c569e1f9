"""A CandidatesExecuted always fits a Kafka record: outputs are trimmed fairly, heads kept."""

from __future__ import annotations

from codejury.execution.stage import EVENT_BUDGET_BYTES, fit_outputs
from codejury.proto.v1 import domain_pb2, events_pb2


def _executed(
    outputs: list[tuple[str, str]], prompt: str = "def f():\n"
) -> events_pb2.CandidatesExecuted:
    return events_pb2.CandidatesExecuted(
        request_id="r",
        problem=domain_pb2.Problem(problem_id="p", language="python", prompt=prompt),
        results=[
            domain_pb2.ExecutionResult(candidate_id=f"c{i}", stdout=out, stderr=err)
            for i, (out, err) in enumerate(outputs)
        ],
    )


def test_the_outage_s_request_fits_with_every_stream_s_head_kept() -> None:
    """Issue 16's request: 32 candidates whose tests print 60 KB each (1.9 MB)."""
    loud = [(f"{i:02d}" + "x" * 60_000, "warning: y\n") for i in range(32)]
    executed = _executed(loud)
    assert executed.ByteSize() > EVENT_BUDGET_BYTES
    fit_outputs(executed, EVENT_BUDGET_BYTES)
    assert executed.ByteSize() <= EVENT_BUDGET_BYTES
    for i, result in enumerate(executed.results):
        assert result.stdout.startswith(f"{i:02d}xxx") and result.stdout_truncated
        # the short stream kept all of it: what the long ones did not need, they share
        assert result.stderr == "warning: y\n" and not result.stderr_truncated
    assert len(executed.results[0].stdout) > 20_000


def test_an_event_that_fits_is_not_touched() -> None:
    executed = _executed([("ok\n", "")] * 8)
    before = executed.SerializeToString()
    fit_outputs(executed, EVENT_BUDGET_BYTES)
    assert executed.SerializeToString() == before


def test_multibyte_text_is_cut_on_a_character_boundary() -> None:
    executed = _executed([("é" * 50_000, "")] * 2)
    fit_outputs(executed, 60_000)
    assert executed.ByteSize() <= 60_000
    assert set(executed.results[0].stdout) == {"é"} and executed.results[0].stdout_truncated


def test_when_even_empty_outputs_cannot_fit_nothing_is_trimmed() -> None:
    """The producer's size check then refuses the event with the reason."""
    executed = _executed([("x" * 1000, "")], prompt="p" * 200_000)
    fit_outputs(executed, 100_000)
    assert executed.results[0].stdout == "x" * 1000
