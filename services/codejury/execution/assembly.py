"""Putting a problem and a completion together into the program that runs (pure)."""

from __future__ import annotations

from codejury.proto.v1 import domain_pb2


def assemble(problem: domain_pb2.Problem, completion: str) -> str:
    """The full program text for ``completion`` of ``problem``.

    - MultiPL-E: ``prompt + completion + "\\n" + tests`` (its harness does exactly this);
    - MBXP: ``prompt + solution + "\\n" + test`` (mxeval's layout);
    - HumanEval-X: ``declaration`` first when the prompt does not already start with it
      (Go and others keep their imports there), then as MBXP.
    An unspecified assembly is treated as MultiPL-E.
    """
    tests = problem.tests
    if problem.assembly == domain_pb2.PROGRAM_ASSEMBLY_HUMANEVAL_X:
        head = problem.prompt
        if problem.declaration and not problem.prompt.startswith(problem.declaration):
            head = problem.declaration + problem.prompt
        return head + completion + "\n" + tests
    return problem.prompt + completion + "\n" + tests
