"""Benchmark problems through the Solve pipeline, into the outcomes ``evaluation.metrics``
summarizes: what ``codejury eval`` and ``codejury demo`` run.

Each problem is one Solve request for N samples (their execution labels, the reward
model's scores and the generator's log-probabilities all come back in the reply) and,
when asked, one for a single greedy sample. Seeds are derived from the problem id and a
base seed, so a rerun with the same settings sends identical requests, which the
generator's sample cache (``generation.cache_dir``) answers without sampling again.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from codejury.evaluation.datasets import BenchmarkProblem
from codejury.evaluation.metrics import CandidateOutcome, ProblemOutcome
from codejury.pipeline.client import SolveClient
from codejury.proto.v1 import domain_pb2, services_pb2

# The rankers every evaluation compares; the random ranker scores every candidate alike,
# so its pick is scored as the expectation over all of them (it equals the random-pick
# column by construction, a check on the arithmetic).
REWARD_MODEL, LOGPROB, RANDOM = "reward_model", "logprob", "random_ranker"
RANKERS = (REWARD_MODEL, LOGPROB, RANDOM)


@dataclass(frozen=True)
class EvalPlan:
    n: int = 8
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 0  # 0: the generator's default
    seed: int = 1234
    greedy: bool = True  # also one greedy sample per problem (the greedy pass@1 column)
    deadline_s: float = 900.0
    concurrency: int = 2  # requests in flight: execution of one overlaps generation of the next


def problem_seed(base: int, problem_id: str) -> int:
    digest = hashlib.sha256(f"{base}:{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1 or 1


def passed_of(result: domain_pb2.ExecutionResult | None) -> bool | None:
    """True/False from the program's own outcome; None when it says nothing about it."""
    if result is None or result.status in (
        domain_pb2.SANDBOX_ERROR,
        domain_pb2.EXECUTION_STATUS_UNSPECIFIED,
    ):
        return None
    return result.status == domain_pb2.PASSED


def outcome_of(
    problem: domain_pb2.Problem,
    sampled: services_pb2.SolveResponse,
    greedy: services_pb2.SolveResponse | None,
) -> ProblemOutcome:
    results = {r.candidate_id: r for r in sampled.results}
    scores = {s.candidate_id: s.score for s in sampled.scores}
    candidates = tuple(
        CandidateOutcome(
            passed=passed_of(results.get(c.candidate_id)),
            scores={
                REWARD_MODEL: scores.get(c.candidate_id, float("-inf")),
                LOGPROB: c.logprob_mean,
                RANDOM: 0.0,
            },
            completion=c.completion,
        )
        for c in sampled.candidates
    )
    greedy_passed = None
    if greedy is not None:
        greedy_passed = bool(greedy.results) and passed_of(greedy.results[0]) is True
    return ProblemOutcome(problem.problem_id, problem.language, candidates, greedy_passed)


def evaluate(
    client: SolveClient,
    problems: Sequence[BenchmarkProblem],
    plan: EvalPlan,
    *,
    on_done: Callable[[ProblemOutcome], None] | None = None,
) -> list[ProblemOutcome]:
    """Every problem through Solve; outcomes in the problems' order."""
    run = uuid.uuid4().hex[:8]

    def one(item: BenchmarkProblem) -> ProblemOutcome:
        problem = item.problem
        seed = problem_seed(plan.seed, f"{problem.language}/{problem.problem_id}")
        request = f"eval-{run}-{problem.language}-{problem.problem_id}"
        sampling = domain_pb2.SamplingParams(
            temperature=plan.temperature,
            top_p=plan.top_p,
            max_new_tokens=plan.max_new_tokens,
            seed=seed,
        )
        sampled = client.solve(
            problem,
            plan.n,
            sampling=sampling,
            deadline_s=plan.deadline_s,
            request_id=request,
            # the paper's setting: the benchmark's tests grade the pick, never make it
            selection=domain_pb2.SELECTION_RERANKER_ONLY,
        )
        greedy = None
        if plan.greedy:
            greedy = client.solve(
                problem,
                1,
                sampling=domain_pb2.SamplingParams(
                    greedy=True, max_new_tokens=plan.max_new_tokens, seed=seed
                ),
                deadline_s=plan.deadline_s,
                request_id=f"{request}-greedy",
            )
        outcome = outcome_of(problem, sampled, greedy)
        if on_done is not None:
            on_done(outcome)
        return outcome

    pool = ThreadPoolExecutor(max_workers=plan.concurrency)
    try:
        return list(pool.map(one, problems))
    finally:
        # Interrupted (Ctrl-C, SIGTERM): drop the queued problems and return at once
        # instead of waiting out the requests in flight; the caller stops the pipeline,
        # which ends them. (Done: every future has finished, nothing is dropped.)
        pool.shutdown(wait=False, cancel_futures=True)
