"""Errors of the evaluation package.

    EvaluationError (CodeJuryError)
    ├── DatasetError (PermanentError)               a dataset file is malformed or unreadable
    │   └── DatasetNotFoundError (NotFoundError)    the file, the data dir or the package
    │                                               that ships the dataset is not there
    ├── InvalidCountsError (InvalidArgumentError)   pass@k's n, c or k out of range
    ├── InvalidOutcomesError (InvalidArgumentError) outcomes that cannot be scored as given:
    │                                               none, a problem without candidates, a
    │                                               missing or NaN ranker score, a duplicate
    │                                               problem, greedy measured on only some
    └── ReportError (InvalidArgumentError)          a report that cannot be written or read
                                                    as asked: reference numbers that are not
                                                    fractions, a JSON file of another schema

Everything here is permanent: evaluation reads files and computes, so retrying the same
call fails the same way.
"""

from __future__ import annotations

from codejury.core.errors import (
    CodeJuryError,
    InvalidArgumentError,
    NotFoundError,
    PermanentError,
)


class EvaluationError(CodeJuryError):
    """Base of the evaluation package's errors."""


class DatasetError(EvaluationError, PermanentError):
    """A dataset file is missing or malformed; the message names the file and the fix."""


class DatasetNotFoundError(DatasetError, NotFoundError):
    """The file, the data dir or the package that ships the dataset does not exist."""


class InvalidCountsError(EvaluationError, InvalidArgumentError):
    """pass@k was asked for counts no sampling can produce (k > n, c > n, negatives)."""


class InvalidOutcomesError(EvaluationError, InvalidArgumentError):
    """The per-problem outcomes cannot be summarized without guessing what was meant."""


class ReportError(EvaluationError, InvalidArgumentError):
    """A report cannot be written or read back as asked."""
