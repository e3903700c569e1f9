"""Errors of the training package.

    TrainingError (CodeJuryError)
    ├── TrainingDataError (InvalidArgumentError)         a row or a request names a bad value
    │   │                                                (unknown status, a SANDBOX_ERROR
    │   │                                                offered as a label, a bad snapshot id)
    │   ├── UnsupportedLanguageError                     no mutation operators for a language
    │   └── EvaluationOnlyDatasetError                   MultiPL-E / HumanEval(-X) offered as
    │                                                    training data (licence, overlap)
    ├── SnapshotNotFoundError (NotFoundError)            no snapshot with that id, or none yet
    ├── CheckpointNotFoundError (NotFoundError)          a policy / checkpoint / earlier
    │                                                    iteration's output is not there
    ├── CorruptSnapshotError (FailedPreconditionError)   a snapshot's files are missing or do
    │                                                    not match their id
    ├── NoPairsError (FailedPreconditionError)           the data yields no training pairs, or
    │                                                    no held-out problem to measure on
    ├── TrainingDependencyError (FailedPreconditionError) the ``train`` extra is not installed
    ├── ToolchainUnavailableError (FailedPreconditionError) an iteration's language cannot run
    │                                                    here (its toolchain is missing)
    └── StoreWriteError (TemporaryError)                 a Parquet part could not be written
                                                         durably (disk full, I/O): retry later

Foreign errors (pyarrow, OSError, torch) are converted here, at the boundary, with
``raise ... from exc``.
"""

from __future__ import annotations

from codejury.core.errors import (
    CodeJuryError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    TemporaryError,
)


class TrainingError(CodeJuryError):
    """Base of the training package's errors."""


class TrainingDataError(TrainingError, InvalidArgumentError):
    """A labelled row or a request field is wrong; the message names the field and the fix."""


class UnsupportedLanguageError(TrainingDataError):
    """The mutation operators do not cover this language."""


class EvaluationOnlyDatasetError(TrainingDataError):
    """An evaluation-only dataset (MultiPL-E, HumanEval, HumanEval-X) was offered for training."""


class SnapshotNotFoundError(TrainingError, NotFoundError):
    """The store has no snapshot with this id (or none at all)."""


class CheckpointNotFoundError(TrainingError, NotFoundError):
    """A model directory or an earlier step's output the run needs is missing."""


class CorruptSnapshotError(TrainingError, FailedPreconditionError):
    """A snapshot's files are missing, unreadable, or do not hash to its id."""


class NoPairsError(TrainingError, FailedPreconditionError):
    """The data yields no (passing, failing) pair to train on, or nothing to evaluate on."""


class TrainingDependencyError(TrainingError, FailedPreconditionError):
    """A library of the ``train`` extra is missing."""


class ToolchainUnavailableError(TrainingError, FailedPreconditionError):
    """A language of the iteration has no toolchain on this machine: nothing can label it."""


class StoreWriteError(TrainingError, TemporaryError):
    """A Parquet part could not be written and synced; nothing was committed."""
