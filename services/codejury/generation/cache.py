"""Samples of a request kept on disk, so an identical request is not sampled twice.

Identical means the same model (name and revision) on the same engine, the same prompts
(text, messages and stop rule), the same n and the same sampling with the same seed: what
makes a seeded backend repeat itself. A request without a seed draws a fresh one and so never
hits. What is stored is the backend's samples; candidates (ids, records) are built
from them per request as usual. ``codejury demo`` turns it on so a rerun with the same
settings skips the generator's minutes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codejury.core.logging import get_logger
from codejury.generation.backends import Job, ModelInfo, Sample
from codejury.generation.requests import Sampling

log = get_logger(__name__)

_FORMAT = 1


def request_key(info: ModelInfo, jobs: Sequence[Job], n: int, sampling: Sampling) -> str:
    spec: dict[str, Any] = {
        "format": _FORMAT,
        "model": [info.name, info.revision],
        "n": n,
        "sampling": [sampling.temperature, sampling.top_p, sampling.seed, sampling.greedy],
        "jobs": [
            {
                "text": job.prompt.text,
                "messages": [[m.role, m.content] for m in job.prompt.messages],
                "stop": repr(job.prompt.stop),
                "max_new_tokens": job.max_new_tokens,
            }
            for job in jobs
        ],
    }
    if info.engine:  # the same seed samples differently on another engine
        spec["engine"] = info.engine
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


class SampleCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[Sample] | None:
        path = self._path(key)
        try:
            rows = json.loads(path.read_text())
            return [Sample(**{**row, "token_ids": tuple(row["token_ids"])}) for row in rows]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:  # a torn or foreign file
            log.warning("generation.cache_unreadable", path=str(path), error=str(exc))
            return None

    def put(self, key: str, samples: Sequence[Sample]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [dataclasses.asdict(sample) for sample in samples]
        # Written aside and renamed: a reader never sees half a file.
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as tmp:
            json.dump(rows, tmp)
        os.replace(tmp.name, path)
