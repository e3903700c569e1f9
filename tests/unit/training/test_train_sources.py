"""Training reads benchmark data only through ``sources``: MultiPL-E and HumanEval(-X) refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from codejury.evaluation.datasets import Dataset, DatasetFile
from codejury.training.catalog import mbxp_prompts
from codejury.training.errors import EvaluationOnlyDatasetError, TrainingDataError
from codejury.training.pairs import EVALUATION_ONLY_DATASETS
from codejury.training.sources import EVALUATION_ONLY, find_for_training, load_for_training


def write_mbxp(data_dir: Path) -> None:
    row = {
        "task_id": "MBPP/1",
        "language": "python",
        "prompt": "def f():\n",
        "canonical_solution": "    return 1\n",
        "test": "\ndef check(candidate):\n    assert candidate() == 1\n",
        "entry_point": "f",
    }
    (data_dir / "mbxp").mkdir()
    (data_dir / "mbxp" / "mbpp_release_v1.jsonl").write_text(json.dumps(row) + "\n")


@pytest.mark.parametrize(
    ("dataset", "reason"),
    [
        (Dataset.MULTIPL_E, "licence forbids training"),
        (Dataset.HUMANEVAL, "leaks the evaluation problems"),
        (Dataset.HUMANEVAL_X, "leaks the evaluation problems"),
    ],
)
def test_evaluation_only_datasets_are_refused(
    dataset: Dataset, reason: str, tmp_path: Path
) -> None:
    # the file need not exist: the refusal comes before any read
    file = DatasetFile(dataset, "python", tmp_path / "humaneval-py-reworded.jsonl")
    with pytest.raises(EvaluationOnlyDatasetError, match=rf"dataset={dataset.value} .*{reason}"):
        load_for_training(file)
    with pytest.raises(EvaluationOnlyDatasetError, match=r"Train on mbxp"):
        find_for_training(tmp_path, dataset, "python")


def test_the_refusal_is_a_bad_argument_of_the_training_package() -> None:
    assert issubclass(EvaluationOnlyDatasetError, TrainingDataError)


def test_mbxp_loads(tmp_path: Path) -> None:
    write_mbxp(tmp_path)
    (problem,) = load_for_training(find_for_training(tmp_path, Dataset.MBXP, "python"))
    assert problem.problem.problem_id == "MBPP/1"
    assert mbxp_prompts(tmp_path, ["python"]) == {("python", "MBPP/1"): "def f():\n"}


def test_row_level_and_loader_level_lists_agree() -> None:
    assert {d.value for d in EVALUATION_ONLY} == EVALUATION_ONLY_DATASETS
