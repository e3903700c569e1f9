"""Generation throughput: batched sampling against the same samples drawn one at a time,
and engine against engine (transformers, llama.cpp) on the same prompts and settings.

Both modes sample the same problems with the same parameters in one process, interleaved
problem by problem (``measure``; ``measure_engines`` interleaves the engines too), so their
ratio is measured on the same machine in the same state, and a burst of load from other
processes falls on both. Tokens/s
counts the tokens of the kept completions only: a batch that waits for its longest
sequence pays for that wait. Each run also records the process's CPU time: on a machine
whose cores other processes share, wall-clock rates swing with their load, while tokens
per CPU-second measure the work itself (exactly so with ``generation.torch_threads=1``;
with more threads, OpenMP's spin-waiting counts as work).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from codejury.generation.generator import Generator
from codejury.proto.v1 import domain_pb2


@dataclass(frozen=True, slots=True)
class BenchRun:
    mode: Literal["batched", "sequential"]
    n: int  # candidates per problem
    problems: int
    candidates: int
    tokens: int  # completion tokens over all candidates
    seconds: float
    cpu_seconds: float  # this process's CPU time (all threads)
    engine: str = ""  # transformers, llamacpp, openai: the backend that sampled

    @property
    def candidates_per_s(self) -> float:
        return self.candidates / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.tokens / self.cpu_seconds if self.cpu_seconds else 0.0

    @property
    def seconds_per_problem(self) -> float:
        return self.seconds / self.problems if self.problems else 0.0

    def __add__(self, other: BenchRun) -> BenchRun:
        """Two runs of the same mode and n over different problems, as one."""
        return BenchRun(
            self.mode,
            self.n,
            self.problems + other.problems,
            self.candidates + other.candidates,
            self.tokens + other.tokens,
            self.seconds + other.seconds,
            self.cpu_seconds + other.cpu_seconds,
            self.engine,
        )

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "engine": self.engine,
            "mode": self.mode,
            "n": self.n,
            "problems": self.problems,
            "candidates": self.candidates,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "candidates_per_s": round(self.candidates_per_s, 3),
            "tokens_per_s": round(self.tokens_per_s, 2),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "tokens_per_cpu_s": round(self.tokens_per_cpu_s, 2),
            "seconds_per_problem": round(self.seconds_per_problem, 2),
        }


def run_batched(
    generator: Generator,
    problems: Sequence[domain_pb2.Problem],
    n: int,
    sampling: domain_pb2.SamplingParams,
) -> BenchRun:
    """One request of ``n`` candidates per problem (one batch per problem)."""
    started, cpu = time.perf_counter(), time.process_time()
    candidates = []
    for i, problem in enumerate(problems):
        candidates += generator.generate([problem], n, sampling, request_key=f"bench-b{i}")
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    tokens = sum(c.completion_tokens for c in candidates)
    return BenchRun("batched", n, len(problems), len(candidates), tokens, seconds, cpu_seconds)


def run_sequential(
    generator: Generator,
    problems: Sequence[domain_pb2.Problem],
    n: int,
    sampling: domain_pb2.SamplingParams,
) -> BenchRun:
    """``n`` requests of one candidate per problem (seeds differ per call)."""
    started, cpu = time.perf_counter(), time.process_time()
    candidates = []
    for i, problem in enumerate(problems):
        for k in range(n):
            params = domain_pb2.SamplingParams()
            params.CopyFrom(sampling)
            params.seed = sampling.seed + k if sampling.seed else 0
            candidates += generator.generate([problem], 1, params, request_key=f"bench-s{i}-{k}")
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    tokens = sum(c.completion_tokens for c in candidates)
    return BenchRun("sequential", n, len(problems), len(candidates), tokens, seconds, cpu_seconds)


def measure(
    generator: Generator,
    problems: Sequence[domain_pb2.Problem],
    ns: Sequence[int],
    sequential_n: int,
    sampling: domain_pb2.SamplingParams,
) -> tuple[BenchRun, list[BenchRun]]:
    """The sequential run of ``sequential_n`` and a batched run per n in ``ns``, each
    problem sampled in every mode before the next problem."""
    sequential: BenchRun | None = None
    batched: dict[int, BenchRun] = {}
    for problem in problems:
        one = run_sequential(generator, [problem], sequential_n, sampling)
        sequential = one if sequential is None else sequential + one
        for n in ns:
            run = run_batched(generator, [problem], n, sampling)
            batched[n] = batched[n] + run if n in batched else run
    if sequential is None:
        raise ValueError("problems: give at least one problem to measure")
    return sequential, [batched[n] for n in ns]


def measure_engines(
    generators: Mapping[str, Generator],
    problems: Sequence[domain_pb2.Problem],
    ns: Sequence[int],
    sequential_n: int,
    sampling: domain_pb2.SamplingParams,
) -> dict[str, tuple[BenchRun, list[BenchRun]]]:
    """``measure`` for every engine, problem by problem: each problem is sampled by every
    engine in every mode before the next problem, so load from other processes falls on
    all of them alike."""
    results: dict[str, tuple[BenchRun, list[BenchRun]]] = {}
    for problem in problems:
        for engine, generator in generators.items():
            sequential, runs = measure(generator, [problem], ns, sequential_n, sampling)
            sequential = dataclasses.replace(sequential, engine=engine)
            runs = [dataclasses.replace(run, engine=engine) for run in runs]
            if engine in results:
                before, before_runs = results[engine]
                sequential = before + sequential
                runs = [a + b for a, b in zip(before_runs, runs, strict=True)]
            results[engine] = (sequential, runs)
    if not results:
        raise ValueError("problems, generators: give at least one of each to measure")
    return results


def speedup(better: BenchRun, base: BenchRun, *, by: Literal["wall", "cpu"]) -> float:
    """How many times ``better``'s token throughput is ``base``'s (batched against
    sequential, or one engine against another), per wall-clock second or per CPU-second."""
    if by == "cpu":
        old, new = base.tokens_per_cpu_s, better.tokens_per_cpu_s
    else:
        old, new = base.tokens_per_s, better.tokens_per_s
    return new / old if old else 0.0
