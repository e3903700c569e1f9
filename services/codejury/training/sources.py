"""The only way training code reads benchmark data: MBXP (and user-supplied data) only.

MultiPL-E is evaluation-only: its licence forbids training on it. HumanEval and
HumanEval-X are the problems MultiPL-E translates, so training on them would leak the
evaluation set into the model; EvalPlus's HumanEval+ and MBPP+ are evaluation sets too.
``load_for_training`` refuses them all with an error
that names the dataset, the reason and what to load instead; ``find_for_training``
does the same for a (dataset, language) lookup. Row-level refusal (rows already in the
store) is ``codejury.training.pairs.is_evaluation_only``.
"""

from __future__ import annotations

from pathlib import Path

from codejury.evaluation.datasets import BenchmarkProblem, Dataset, DatasetFile, find, load
from codejury.training.errors import EvaluationOnlyDatasetError

#: Why each evaluation-only dataset may not be trained on.
EVALUATION_ONLY: dict[Dataset, str] = {
    Dataset.MULTIPL_E: "its licence forbids training on it; it is the evaluation set",
    Dataset.HUMANEVAL: "MultiPL-E, the evaluation set, is its translation: training on it "
    "leaks the evaluation problems",
    Dataset.HUMANEVAL_X: "it translates HumanEval, the problems of MultiPL-E (the evaluation "
    "set): training on it leaks the evaluation problems",
    Dataset.MULTIPL_E_MBPP: "MultiPL-E's licence forbids training on it (both halves)",
    Dataset.EVALPLUS_HUMANEVAL: "HumanEval+ is HumanEval, the problems of MultiPL-E (the "
    "evaluation set), with more tests: training on it leaks the evaluation problems",
    Dataset.EVALPLUS_MBPP: "MBPP+ is an evaluation set: training on it leaks its problems",
}


def refuse_evaluation_only(dataset: Dataset, where: str) -> None:
    """Raise ``EvaluationOnlyDatasetError`` when ``dataset`` may not be trained on."""
    reason = EVALUATION_ONLY.get(dataset)
    if reason is not None:
        raise EvaluationOnlyDatasetError(
            f"dataset={dataset.value} ({where}) is evaluation-only: {reason}. Train on "
            f"{Dataset.MBXP.value} or on your own labelled data instead"
        )


def load_for_training(file: DatasetFile) -> list[BenchmarkProblem]:
    """``codejury.evaluation.datasets.load``, refusing evaluation-only datasets."""
    refuse_evaluation_only(file.dataset, str(file.path))
    return load(file)


def find_for_training(data_dir: Path, dataset: Dataset, language: str) -> DatasetFile:
    """``codejury.evaluation.datasets.find``, refusing evaluation-only datasets first."""
    refuse_evaluation_only(dataset, f"language {language}")
    return find(data_dir, dataset, language)
