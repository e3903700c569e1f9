"""Dataset loaders on tiny files written here, plus one look at the real data dir."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from codejury.evaluation.datasets import (
    Dataset,
    DatasetError,
    DatasetFile,
    DatasetNotFoundError,
    dataset_files,
    detect,
    find,
    load,
    load_humaneval_x,
    load_mbxp,
    load_multipl_e,
)
from codejury.proto.v1 import domain_pb2

# Read at import: the autouse fixture in tests/conftest.py removes CODEJURY_* during tests.
DATA_DIR = Path(
    os.environ.get("CODEJURY_DATA_DIR", Path(__file__).parents[3].parent / "shared" / "data")
)


def write_jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def mbxp_row(task_id: str = "MBPP/1", **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "task_id": task_id,
        "language": "python",
        "prompt": "def f():\n",
        "canonical_solution": "    return 1\n",
        "test": "\ndef check(candidate):\n    assert candidate() == 1\n",
        "entry_point": "f",
        "description": "return one",
    }
    row.update(fields)
    return row


def test_mbxp_rows_become_problems_in_registry_names(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mbcsp_release_v1.2.jsonl",
        [
            mbxp_row("MBCSP/1", language="csharp", canonical_solution="return 1;}"),
            mbxp_row("MBCSP/2", language="csharp", canonical_solution=None),
        ],
    )
    first, second = load_mbxp(path)
    assert first.problem.problem_id == "MBCSP/1"
    assert first.problem.language == "csharp"
    assert first.problem.assembly == domain_pb2.PROGRAM_ASSEMBLY_MBXP
    assert first.problem.dataset == "mbxp"
    assert first.problem.entry_point == "f"
    assert first.problem.tests.startswith("\ndef check")
    assert list(first.problem.stop_sequences) == ["\n    }\n"]  # the language's own
    assert first.canonical_solution == "return 1;}"
    assert first.example_test is None
    assert second.canonical_solution is None


def test_humaneval_x_go_puts_test_setup_before_the_prompt(tmp_path: Path) -> None:
    row = {
        "task_id": "Go/0",
        "prompt": 'import (\n    "math"\n)\nfunc F() float64 {\n',
        "declaration": "\nfunc F() float64 {\n",
        "canonical_solution": "    return math.Pi\n}\n",
        "test": "func TestF(t *testing.T) {}\n",
        "example_test": "func TestF(t *testing.T) {}\n",
        "import": 'import (\n    "math"\n)\n',
        "test_setup": 'package main\n\nimport (\n    "testing"\n)\n',
    }
    (problem,) = load_humaneval_x(write_jsonl(tmp_path / "humaneval_go.jsonl.gz", [row]))
    assert problem.problem.language == "go"
    assert problem.problem.assembly == domain_pb2.PROGRAM_ASSEMBLY_HUMANEVAL_X
    assert problem.problem.declaration == row["test_setup"]
    assert problem.canonical_solution == row["canonical_solution"]
    assert problem.example_test == row["example_test"]


@pytest.mark.parametrize(("code", "language"), [("rust", "rust"), ("js", "javascript")])
def test_humaneval_x_declaration_only_where_its_harness_uses_it(
    tmp_path: Path, code: str, language: str
) -> None:
    row = {
        "task_id": "X/0",
        "prompt": "/* doc */\n",
        "declaration": "fn f() -> i32 {\n",
        "canonical_solution": "1\n}\n",
        "test": "",
        "example_test": "",
    }
    (problem,) = load_humaneval_x(write_jsonl(tmp_path / f"humaneval_{code}.jsonl.gz", [row]))
    assert problem.problem.language == language
    assert problem.problem.declaration == (row["declaration"] if code == "rust" else "")
    assert problem.example_test is None  # empty means none


def test_multipl_e_stop_tokens_become_stop_sequences(tmp_path: Path) -> None:
    row = {
        "name": "HumanEval_0_has_close_elements",
        "language": "go_test.go",
        "prompt": "package x_test\n",
        "tests": "func TestX(t *testing.T) {}\n",
        "stop_tokens": ["\nfunc", "struct"],
        "doctests": "transform",
    }
    (problem,) = load_multipl_e(write_jsonl(tmp_path / "humaneval-go-reworded.jsonl", [row]))
    assert problem.problem.problem_id == "HumanEval_0_has_close_elements"
    assert problem.problem.language == "go"
    assert list(problem.problem.stop_sequences) == ["\nfunc", "struct"]
    assert problem.problem.entry_point == "has_close_elements"
    assert problem.problem.assembly == domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E
    assert problem.problem.dataset == "multipl-e/humaneval"
    assert problem.canonical_solution is None


def test_dataset_files_lists_registry_languages_and_the_newest_mbxp_release(
    tmp_path: Path,
) -> None:
    write_jsonl(tmp_path / "mbxp" / "mbpp_release_v1.jsonl", [mbxp_row()])
    write_jsonl(tmp_path / "mbxp" / "mbjp_release_v1.jsonl", [])
    newest = write_jsonl(tmp_path / "mbxp" / "mbjp_release_v1.2.jsonl", [])
    write_jsonl(tmp_path / "mbxp" / "mbkp_release_v1.2.jsonl", [])  # Kotlin: not in the registry
    write_jsonl(tmp_path / "mbxp" / "notes.jsonl", [])
    write_jsonl(tmp_path / "humaneval-x" / "humaneval_rust.jsonl.gz", [])
    write_jsonl(tmp_path / "multipl-e" / "humaneval-sh-reworded.jsonl", [])
    write_jsonl(tmp_path / "multipl-e" / "humaneval-hs-reworded.jsonl", [])  # Haskell: not either
    assert [(f.dataset, f.language, f.path.name) for f in dataset_files(tmp_path)] == [
        (Dataset.HUMANEVAL_X, "rust", "humaneval_rust.jsonl.gz"),
        (Dataset.MBXP, "java", "mbjp_release_v1.2.jsonl"),
        (Dataset.MBXP, "python", "mbpp_release_v1.jsonl"),
        (Dataset.MULTIPL_E, "bash", "humaneval-sh-reworded.jsonl"),
    ]
    assert find(tmp_path, Dataset.MBXP, "JAVA").path == newest
    assert load(find(tmp_path, Dataset.MBXP, "py"))[0].problem.problem_id == "MBPP/1"


def test_missing_data_dir_and_file_name_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=rf"{tmp_path / 'absent'}.*CODEJURY_DATA_DIR"):
        dataset_files(tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match=r"no mbxp file for ruby.*download it"):
        find(tmp_path, Dataset.MBXP, "rb")
    missing = tmp_path / "mbxp" / "mbpp_release_v1.jsonl"
    with pytest.raises(DatasetNotFoundError, match=rf"{missing} does not exist.*mxeval"):
        load(DatasetFile(Dataset.MBXP, "python", missing))


def test_malformed_rows_name_the_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "mbpp_release_v1.jsonl"
    path.write_text(json.dumps(mbxp_row()) + "\n{not json\n")
    with pytest.raises(DatasetError, match=rf"{path}:2: not JSON.*download it again"):
        load_mbxp(path)
    write_jsonl(path, [mbxp_row(), {"task_id": "MBPP/2", "language": "python"}])
    with pytest.raises(DatasetError, match=rf"{path}:2: missing prompt, test \(is this a mbxp"):
        load_mbxp(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(DatasetError, match=r":1: not a JSON object"):
        load_mbxp(path)


def test_unreadable_gzip_and_unknown_language_are_dataset_errors(tmp_path: Path) -> None:
    broken = tmp_path / "humaneval_cpp.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match=rf"{broken}: cannot be read"):
        load_humaneval_x(broken)
    kotlin = write_jsonl(tmp_path / "mbkp_release_v1.2.jsonl", [mbxp_row(language="kotlin")])
    with pytest.raises(DatasetError, match=r"language 'kotlin' is not in the languages registry"):
        load_mbxp(kotlin)


def test_the_real_data_dir_loads_completely() -> None:
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_DIR}: set CODEJURY_DATA_DIR to use it")
    files = {(f.dataset, f.language): f for f in dataset_files(DATA_DIR)}
    assert (Dataset.MBXP, "python") in files and (Dataset.MULTIPL_E, "bash") in files
    humaneval_x = {lang for dataset, lang in files if dataset == Dataset.HUMANEVAL_X}
    assert humaneval_x == {"cpp", "go", "java", "javascript", "python", "rust"}
    for file in files.values():
        problems = load(file)
        assert problems, file.path
        assert len({p.problem.problem_id for p in problems}) == len(problems), file.path
        assert all(p.problem.language == file.language for p in problems)
        if file.dataset == Dataset.HUMANEVAL_X:
            assert len(problems) == 164
            assert all(p.canonical_solution for p in problems)


def multipl_e_row(name: str, language: str = "py", **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "name": name,
        "language": language,
        "prompt": "def is_not_prime(n: int) -> bool:\n",
        "doctests": "transform",
        "original": "../mbpp/mbpp_3_is_not_prime.py",
        "prompt_terminology": "reworded",
        "tests": "def check(candidate):\n    assert candidate(2) == False\n",
        "stop_tokens": ["\ndef", "\n#", "\nif", "\nclass"],
    }
    row.update(fields)
    return row


def test_multipl_e_mbpp_half_is_its_own_dataset(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "multipl-e" / "mbpp-ts-reworded.jsonl",
        [multipl_e_row("mbpp_3_is_not_prime", "ts")],
    )
    write_jsonl(tmp_path / "multipl-e" / "humaneval-ts-reworded.jsonl", [])
    assert [(f.dataset, f.language) for f in dataset_files(tmp_path)] == [
        (Dataset.MULTIPL_E, "typescript"),
        (Dataset.MULTIPL_E_MBPP, "typescript"),
    ]
    file = find(tmp_path, Dataset.MULTIPL_E_MBPP, "typescript")
    assert file.path == path
    (problem,) = load(file)
    assert problem.problem.dataset == "multipl-e/mbpp"
    assert problem.problem.entry_point == "is_not_prime"
    assert problem.problem.language == "typescript"
    assert problem.problem.assembly == domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E
    with pytest.raises(DatasetNotFoundError, match=r"no multipl-e/mbpp file.*mbpp-\*-reworded"):
        find(tmp_path, Dataset.MULTIPL_E_MBPP, "python")


EVALPLUS_ROW: dict[str, object] = {
    "task_id": "HumanEval/0",
    "prompt": "def f(x):\n",
    "entry_point": "f",
    "canonical_solution": "    return x\n",
    "test": "",
    "contract": "",
    "base_input": [[1]],
    "plus_input": [[2]],
    "atol": 0,
}


@pytest.mark.parametrize(
    ("name", "row", "dataset", "language"),
    [
        ("anything.jsonl", multipl_e_row("mbpp_3_is_not_prime"), Dataset.MULTIPL_E_MBPP, "python"),
        ("x.jsonl", multipl_e_row("HumanEval_0_f", "go_test.go"), Dataset.MULTIPL_E, "go"),
        ("mine.jsonl", mbxp_row(language="php"), Dataset.MBXP, "php"),
        ("HumanEvalPlus-v0.1.10.jsonl.gz", EVALPLUS_ROW, Dataset.EVALPLUS_HUMANEVAL, "python"),
        ("m.jsonl", {**EVALPLUS_ROW, "task_id": "Mbpp/2"}, Dataset.EVALPLUS_MBPP, "python"),
        (
            "HumanEval.jsonl",
            {k: v for k, v in mbxp_row().items() if k != "language"},
            Dataset.HUMANEVAL,
            "python",
        ),
        ("humaneval_rust.jsonl.gz", {"task_id": "Rust/0"}, Dataset.HUMANEVAL_X, "rust"),
    ],
)
def test_detect_reads_the_format_from_the_fields(
    tmp_path: Path, name: str, row: dict[str, object], dataset: Dataset, language: str
) -> None:
    path = write_jsonl(tmp_path / name, [row])
    assert detect(path) == DatasetFile(dataset, language, path)


def test_an_unknown_shape_names_the_fields_each_format_lacks(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mine.jsonl", [{"task_id": "T/1", "prompt": "p", "code": "c"}])
    with pytest.raises(DatasetError) as caught:
        detect(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a format codejury reads: its first row has ")
    assert "code, prompt, task_id" in message
    assert "MultiPL-E also needs name, language, tests, stop_tokens" in message
    assert "MBXP also needs language, test" in message
    assert "EvalPlus (HumanEval+, MBPP+) also needs entry_point, canonical_solution, " in message
    assert "base_input, plus_input, atol" in message
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DatasetError, match=r"has no rows"):
        detect(empty)


def test_an_evalplus_file_is_not_loaded_without_its_expected_outputs(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "HumanEvalPlus.jsonl", [EVALPLUS_ROW])
    with pytest.raises(DatasetError, match=r"EvalPlus file.*codejury.evaluation.evalplus"):
        load(detect(path))
