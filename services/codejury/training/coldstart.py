"""Cold start: negatives made by mutating MBXP canonical solutions, labelled by running them.

For each problem the canonical solution and its mutants run in the sandbox together
(the problem's own tests, assembled as its harness does). Then:

- a problem whose canonical solution does not pass is skipped whole (a broken reference
  says nothing about its mutants);
- the canonical solution is stored as a positive (source ``canonical``);
- a mutant that fails (any user-code outcome: FAILED, COMPILE_ERROR, RUNTIME_ERROR,
  TIMEOUT, ...) is stored as a negative (source ``mutation``, detail ``operator@line``);
- a mutant that passes is an equivalent mutant and is dropped, and so is one that hit a
  SANDBOX_ERROR (our failure, never a label). Both are counted.

Only MBXP is read here: MultiPL-E and HumanEval-X are evaluation-only.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.evaluation.datasets import BenchmarkProblem, Dataset
from codejury.execution.executor import Executor
from codejury.execution.sandbox import Limits
from codejury.proto.v1 import domain_pb2
from codejury.training.mutation import language_name, mutate
from codejury.training.records import LabelledCandidate, Source
from codejury.training.sources import find_for_training, load_for_training
from codejury.training.store import TrainingStore

log = get_logger(__name__)

Progress = Callable[[str, int], None]  # (language, problems done in it)


@dataclass
class MutationReport:
    """What mining did in one language."""

    language: str
    problems: int = 0  # with a canonical solution, attempted
    canonical_passed: int = 0
    canonical_failed: int = 0  # skipped: the reference does not pass here
    mutants: int = 0  # generated and run
    kept: int = 0  # failing mutants stored as negatives
    survived: int = 0  # passing (equivalent) mutants, dropped
    sandbox_errors: int = 0  # dropped: not a label
    no_mutants: int = 0  # problems whose solution offered no mutation site
    statuses: Counter[str] = field(default_factory=Counter)  # of the kept mutants
    operators: Counter[str] = field(default_factory=Counter)  # of the kept mutants


def mbxp_problems(data_dir: Path, language: str, limit: int | None) -> list[BenchmarkProblem]:
    """The first ``limit`` MBXP problems of ``language`` that have a canonical solution."""
    problems = [
        p
        for p in load_for_training(find_for_training(data_dir, Dataset.MBXP, language))
        if p.canonical_solution
    ]
    return problems[:limit] if limit is not None else problems


def mine_mutants(
    problems: Sequence[BenchmarkProblem],
    executor: Executor,
    store: TrainingStore,
    *,
    per_problem: int,
    seed: int = 0,
    iteration: int = 0,
    limits: Limits | None = None,
    flush_every: int = 25,
    progress: Progress | None = None,
) -> MutationReport:
    """Mutate, run and store; the problems must all be of one language."""
    if not problems:
        raise ValueError("problems: give at least one problem")
    language = language_name(problems[0].problem.language)
    report = MutationReport(language)
    pending: list[LabelledCandidate] = []
    for done, item in enumerate(problems, start=1):
        pending.extend(
            _mine_one(
                item,
                executor,
                report,
                per_problem=per_problem,
                seed=seed,
                iteration=iteration,
                limits=limits,
            )
        )
        if pending and done % flush_every == 0:
            store.append(pending)
            pending = []
        if progress is not None:
            progress(language, done)
    store.append(pending)
    log.info("coldstart.mined", **{k: v for k, v in vars(report).items() if isinstance(v, int)})
    return report


def _mine_one(
    item: BenchmarkProblem,
    executor: Executor,
    report: MutationReport,
    *,
    per_problem: int,
    seed: int,
    iteration: int,
    limits: Limits | None,
) -> list[LabelledCandidate]:
    problem, canonical = item.problem, item.canonical_solution or ""
    language = report.language
    report.problems += 1
    rng = random.Random(f"{seed}\0{problem.problem_id}")  # noqa: S311
    mutants = list(mutate(canonical, language, rng, per_problem))
    if not mutants:
        report.no_mutants += 1
    candidates = [
        domain_pb2.Candidate(
            candidate_id=f"{problem.problem_id}/canonical",
            problem_id=problem.problem_id,
            completion=canonical,
            source=domain_pb2.CANDIDATE_SOURCE_CANONICAL,
        ),
        *(
            domain_pb2.Candidate(
                candidate_id=f"{problem.problem_id}/mutant-{i}",
                problem_id=problem.problem_id,
                index=i,
                completion=m.program,
                source=domain_pb2.CANDIDATE_SOURCE_MUTATION,
            )
            for i, m in enumerate(mutants)
        ),
    ]
    results = executor.execute_batch(problem, candidates, limits)
    if results[0].status != domain_pb2.PASSED:
        report.canonical_failed += 1
        log.info(
            "coldstart.canonical_failed",
            problem=problem.problem_id,
            status=domain_pb2.ExecutionStatus.Name(results[0].status),
            detail=results[0].detail,
        )
        return []
    report.canonical_passed += 1

    def row(completion: str, status: str, source: Source, detail: str = "") -> LabelledCandidate:
        return LabelledCandidate(
            problem_id=problem.problem_id,
            language=language,
            program=completion,
            status=status,
            source=source,
            iteration=iteration,
            prompt=problem.prompt,
            dataset=problem.dataset,
            detail=detail,
        )

    rows = [row(canonical, "PASSED", Source.CANONICAL)]
    for mutant, result in zip(mutants, results[1:], strict=True):
        report.mutants += 1
        if result.status == domain_pb2.PASSED:
            report.survived += 1
        elif result.status in (domain_pb2.SANDBOX_ERROR, domain_pb2.EXECUTION_STATUS_UNSPECIFIED):
            report.sandbox_errors += 1
        else:
            status = domain_pb2.ExecutionStatus.Name(result.status)
            report.kept += 1
            report.statuses[status] += 1
            report.operators[mutant.operator] += 1
            rows.append(row(mutant.program, status, Source.MUTATION, mutant.detail))
    return rows


def cold_start(
    settings: Settings,
    problems: Mapping[str, Sequence[BenchmarkProblem]],
    store: TrainingStore,
    *,
    per_problem: int,
    seed: int | None = None,
    iteration: int = 0,
    progress: Progress | None = None,
) -> list[MutationReport]:
    """``mine_mutants`` for each language's problems (languages with none are skipped) on
    a sandboxed executor of this process, with the mutant wall-clock limit
    (``training.mutation_timeout_s``)."""
    from codejury.execution.factory import make_executor

    executor = make_executor(settings)
    limits = mutation_limits(executor.config.default_limits, settings.training.mutation_timeout_s)
    try:
        return [
            mine_mutants(
                chosen,
                executor,
                store,
                per_problem=per_problem,
                seed=settings.training.seed if seed is None else seed,
                iteration=iteration,
                limits=limits,
                progress=progress,
            )
            for chosen in problems.values()
            if chosen
        ]
    finally:
        executor.sandbox.close()


def seed_empty_store(
    settings: Settings,
    store: TrainingStore,
    data_dir: Path,
    *,
    languages: Sequence[str],
    problems_per_language: int,
    mutants: int,
    progress: Progress | None = None,
) -> list[MutationReport] | None:
    """``cold_start`` on the first ``problems_per_language`` MBXP problems of each
    language, only when ``store`` is empty (None: it has rows, or nothing was asked for):
    what an iteration's ``coldstart`` step and the first reranker both do."""
    if store.parts() or problems_per_language == 0:
        return None
    problems = {
        language: mbxp_problems(data_dir, language, problems_per_language) for language in languages
    }
    return cold_start(settings, problems, store, per_problem=mutants, progress=progress)


def mutation_limits(default: Limits, timeout_s: float) -> Limits:
    """The executor's default limits with the (shorter) mutant wall-clock limit."""
    return replace(default, timeout_s=min(default.timeout_s, timeout_s))
