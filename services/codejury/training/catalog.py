"""Prompts of training problems by (language, problem id), for rows stored without one.

Feedback events carry the candidate but not the problem's prompt; pairs need it, so it
is looked up in MBXP, the training data (never in MultiPL-E: evaluation-only).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from codejury.core.logging import get_logger
from codejury.evaluation.datasets import Dataset, DatasetNotFoundError
from codejury.training.sources import find_for_training, load_for_training

log = get_logger(__name__)


def mbxp_prompts(data_dir: Path, languages: Iterable[str]) -> dict[tuple[str, str], str]:
    prompts: dict[tuple[str, str], str] = {}
    for language in sorted(set(languages)):
        try:
            problems = load_for_training(find_for_training(data_dir, Dataset.MBXP, language))
        except DatasetNotFoundError as exc:
            log.warning("catalog.no_mbxp", language=language, error=str(exc))
            continue
        for item in problems:
            prompts[(item.problem.language, item.problem.problem_id)] = item.problem.prompt
    return prompts
