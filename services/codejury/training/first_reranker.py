"""The first trained reranker: what a deployment serves instead of an untrained head.

A registry starts with an untrained score head on the backbone (``reranking.bootstrap``),
whose scores are near-constant noise (issue 18: every score 0.011-0.029, and a failing
candidate chosen). Before anything is served, this trains it once on cold-start data:

1. the untrained head is registered as the parent (``v0``) if the registry is empty;
2. an empty training store is seeded as the iteration's ``coldstart`` step does: MBXP
   canonical solutions of ``training.languages`` against their failing mutants, labelled
   in the sandbox (MBXP only: evaluation benchmarks are refused by the loaders);
3. the reward model is trained on the store's pairs from the parent, registered as
   iteration 0 (``rm-i0-...``) with its held-out metrics, and marked stable.

``needs_training`` is the decision (pure over the registry's manifests); ``train_first``
the side effects. Both ``codejury up`` and ``codejury demo`` call them before they start
serving, through ``codejury train first-reranker``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.reranking.bootstrap import ensure_stable
from codejury.reranking.manifest import Manifest
from codejury.reranking.registry import ModelRegistry
from codejury.training.catalog import mbxp_prompts
from codejury.training.coldstart import MutationReport, seed_empty_store
from codejury.training.pairs import PairConfig, build_pairs
from codejury.training.registration import new_version_id, register_reward_model
from codejury.training.reward import RewardTrainingConfig, train_reward_model
from codejury.training.store import TrainingStore

log = get_logger(__name__)

Report = Callable[[str], None]
Progress = Callable[[int, int | None], None]


def needs_training(registry: ModelRegistry) -> bool:
    """True when the registry would serve an untrained head: no stable version, or a
    stable one that was never trained."""
    stable = registry.channels().stable
    return stable is None or registry.get(stable).untrained


def seed_store(
    settings: Settings, store: TrainingStore, data_dir: Path, *, report: Report
) -> list[MutationReport]:
    """Cold-start rows into an empty store (nothing when it has rows)."""
    if store.parts():
        return []
    t = settings.training
    languages = [x.strip() for x in t.languages.split(",") if x.strip()]
    report(
        f"cold start: {t.cold_start_problems} MBXP canonical solutions per language "
        f"({', '.join(languages)}) and {t.cold_start_mutants} mutants of each, in the sandbox"
    )
    reports = seed_empty_store(
        settings,
        store,
        data_dir,
        languages=languages,
        problems_per_language=t.cold_start_problems,
        mutants=t.cold_start_mutants,
    )
    for r in reports or []:
        report(
            f"  {r.language}: {r.canonical_passed} of {r.problems} canonical solutions pass, "
            f"{r.kept} failing mutants kept"
        )
    return reports or []


def train_first(
    settings: Settings,
    registry: ModelRegistry,
    data_dir: Path,
    *,
    backbone: str,
    report: Report,
    progress: Progress | None = None,
) -> Manifest:
    """Seed, train from the untrained head, register as iteration 0 and mark stable."""
    parent = ensure_stable(registry, backbone)
    store = TrainingStore.from_settings(settings)
    seed_store(settings, store, data_dir, report=report)
    snapshot = store.snapshot()
    missing = {r.language for r in snapshot.rows if not r.prompt}
    prompts = mbxp_prompts(data_dir, missing) if missing else {}
    pairs = build_pairs(snapshot.rows, PairConfig.from_settings(settings), prompts=prompts)
    report(
        f"training the reward model from {parent}: {len(pairs.train)} pairs from "
        f"{pairs.train_problems} problems ({len(pairs.heldout_problems)} held out; "
        f"{pairs.length_balance_dropped} mutant pairs dropped to balance length)"
    )
    with tempfile.TemporaryDirectory(prefix="codejury-first-rm-") as tmp:
        result = train_reward_model(
            pairs,
            registry.model_dir(parent),
            Path(tmp) / "model",
            RewardTrainingConfig.from_settings(settings),
            progress=progress,
        )
        manifest = register_reward_model(
            registry,
            result.model_dir,
            version_id=new_version_id(0, snapshot.snapshot_id),
            parent=parent,
            iteration=0,
            snapshot_id=snapshot.snapshot_id,
            metrics=result.metrics,
        )
    registry.mark_stable(manifest.version_id)
    m = result.metrics
    report(
        f"registered {manifest.version_id} as stable: held-out pass@1 of its picks "
        f"{m['heldout_pass_at_1']:.3f} (untrained {m['base_heldout_pass_at_1']:.3f}, random "
        f"{m['heldout_random_pass_at_1']:.3f}, oracle {m['heldout_oracle_pass_at_1']:.3f})"
    )
    log.info("first_reranker.trained", version=manifest.version_id, **m)
    return manifest
