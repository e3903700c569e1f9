"""CodeJury: sample N programs, run them in a sandbox, let a learned reranker pick one."""

__version__ = "0.1.0"
