"""The Kafka stage: ``codejury.candidates.executed`` -> ``codejury.solve.completed`` plus one
``codejury.feedback`` per candidate (labels, scores, reranker version).

The answer (``chosen_index``) follows the request's selection policy; the feedback's
``chosen`` is always the reward model's own pick, so the canary is judged by the model,
not by the tests that may have overruled it.

A request the ranker refuses for good (bad input, a corrupt or unserved version) is
still answered: a SolveCompleted with ``error`` set, so the caller waiting on the Solve
RPC hears back; no feedback is published for it. An endpoint that does not answer
raises a TemporaryError and the consumer retries, then dead-letters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from codejury.bus.envelope import Event, Outgoing
from codejury.bus.topics import FEEDBACK, SOLVE_COMPLETED
from codejury.core import metrics
from codejury.core.errors import PermanentError
from codejury.core.logging import get_logger
from codejury.proto.v1 import domain_pb2, events_pb2
from codejury.reranking.errors import InvalidRequestError
from codejury.reranking.ranking import Ranker, resolve_selection, scores_of, select_index
from codejury.reranking.requests import RankLimits, check_candidates
from codejury.reranking.routing import draw_for_key

log = get_logger(__name__)


#: ``codejury_reranker_picks_total``'s outcome label for each feedback label.
_PICK = {
    events_pb2.FEEDBACK_LABEL_PASSED: "passed",
    events_pb2.FEEDBACK_LABEL_FAILED: "failed",
    events_pb2.FEEDBACK_LABEL_UNLABELLED: "unlabelled",
}


def label_for(result: domain_pb2.ExecutionResult | None) -> events_pb2.FeedbackLabel:
    """The training label of a candidate: only its own program's outcome counts."""
    if result is None:
        return events_pb2.FEEDBACK_LABEL_UNLABELLED
    if result.status == domain_pb2.PASSED:
        return events_pb2.FEEDBACK_LABEL_PASSED
    if result.status in (domain_pb2.SANDBOX_ERROR, domain_pb2.EXECUTION_STATUS_UNSPECIFIED):
        return events_pb2.FEEDBACK_LABEL_UNLABELLED  # our failure, not the program's
    return events_pb2.FEEDBACK_LABEL_FAILED


def make_handler(
    ranker: Ranker, limits: RankLimits, *, model_name: str
) -> Callable[[Event], Iterable[Outgoing]]:
    def handle(event: Event) -> Iterable[Outgoing]:
        executed = event.payload
        if not isinstance(executed, events_pb2.CandidatesExecuted):
            raise InvalidRequestError(
                f"expected CandidatesExecuted, got {executed.DESCRIPTOR.full_name}"
            )
        key = executed.request_id
        completed = events_pb2.SolveCompleted(
            request_id=executed.request_id,
            problem=executed.problem,
            candidates=executed.candidates,
            results=executed.results,
            selection=resolve_selection(executed.selection, executed.problem),
        )
        try:
            check_candidates(executed.problem, executed.candidates, limits)
            ranking = ranker.rank(
                executed.problem,
                executed.candidates,
                draw=draw_for_key(executed.request_id or event.event_id),
            )
        except PermanentError as exc:
            log.info("rank.refused", request_id=executed.request_id, error=str(exc))
            completed.error = str(exc)
            return [Outgoing(SOLVE_COMPLETED, completed, key=key)]
        scores = scores_of(ranking, executed.candidates, model_name=model_name)
        completed.scores.extend(scores)
        completed.reranker_version = ranking.version
        results = {r.candidate_id: r for r in executed.results if r.candidate_id}
        completed.chosen_index = select_index(
            ranking,
            [results.get(c.candidate_id) for c in executed.candidates] if results else [],
            completed.selection,
        )
        metrics.RERANKS.labels(ranking.version).inc()
        outgoing = [Outgoing(SOLVE_COMPLETED, completed, key=key)]
        for i, (candidate, score) in enumerate(zip(executed.candidates, scores, strict=True)):
            result = results.get(candidate.candidate_id)
            feedback = events_pb2.Feedback(
                request_id=executed.request_id,
                problem_id=executed.problem.problem_id,
                language=executed.problem.language,
                prompt=executed.problem.prompt,
                candidate=candidate,
                score=score,
                chosen=i == ranking.chosen_index,
                reranker_version=ranking.version,
                label=label_for(result),
            )
            if result is not None:
                feedback.result.CopyFrom(result)
            if feedback.chosen:
                # the canary's pass rate in PromQL, by the same label training gets
                metrics.RERANK_PICKS.labels(ranking.version, _PICK[feedback.label]).inc()
            outgoing.append(Outgoing(FEEDBACK, feedback, key=key))
        return outgoing

    return handle
