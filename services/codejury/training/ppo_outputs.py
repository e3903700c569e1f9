"""What a PPO run leaves in its output directory: the metrics file and checkpoints.

    <output_dir>/metrics.jsonl                one JSON line per step (METRIC_FIELDS), fsync'd
    <output_dir>/checkpoints/step-NNNNNN/     policy/ (save_pretrained; LoRA: adapters only),
                                              value_head.pt, trainer.pt (optimiser, RNG),
                                              state.json (step, KL coefficient)

A checkpoint is written to ``.partial-step-NNNNNN`` and renamed, so a directory named
``step-*`` with a ``state.json`` is complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codejury.training.errors import TrainingError

METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
METRIC_FIELDS = (
    "step",
    "reward_mean",
    "reward_std",
    "kl",
    "kl_coef",
    "entropy",
    "clip_fraction",
    "policy_loss",
    "value_loss",
    "value_clip_fraction",
    "response_length",
    "seconds",
)


def last_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint with the highest step under ``output_dir``, or None."""
    root = output_dir / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def read_state(checkpoint: Path) -> dict[str, Any]:
    """``state.json`` of a checkpoint: ``step`` and ``kl_coef``."""
    try:
        state: dict[str, Any] = json.loads((checkpoint / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise TrainingError(
            f"checkpoint {checkpoint} has an unreadable state.json ({exc}): delete that "
            "checkpoint directory to resume from the one before"
        ) from exc
    return state


def save_checkpoint(
    output_dir: Path,
    step: int,
    *,
    policy: Any,
    value_head: nn.Module,
    optimizer: torch.optim.Optimizer,
    kl_coef: float,
) -> Path:
    """Write ``checkpoints/step-NNNNNN`` atomically (a temporary directory renamed)."""
    root = output_dir / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    partial = root / f".partial-step-{step:06d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    policy.save_pretrained(partial / "policy")  # with LoRA: the adapters only
    torch.save(value_head.state_dict(), partial / "value_head.pt")
    rng = torch.get_rng_state()
    torch.save({"optimizer": optimizer.state_dict(), "rng": rng}, partial / "trainer.pt")
    (partial / "state.json").write_text(json.dumps({"step": step, "kl_coef": kl_coef}))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    return final


def load_checkpoint(
    checkpoint: Path, *, value_head: nn.Module, optimizer: torch.optim.Optimizer
) -> float:
    """Restore the value head, optimiser and torch RNG; return the KL coefficient.

    (The policy itself is loaded from ``checkpoint / "policy"`` by the caller.)
    """
    device = next(value_head.parameters()).device
    try:
        head = torch.load(checkpoint / "value_head.pt", map_location=device)
        saved = torch.load(checkpoint / "trainer.pt", map_location="cpu", weights_only=False)
        value_head.load_state_dict(head)
        optimizer.load_state_dict(saved["optimizer"])
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise TrainingError(
            f"checkpoint {checkpoint} cannot be loaded ({exc}): delete it to resume from the "
            "one before, or delete the output directory to start over"
        ) from exc
    torch.set_rng_state(saved["rng"])
    return float(read_state(checkpoint)["kl_coef"])


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    done = sorted((output_dir / CHECKPOINTS_DIR).glob("step-*"))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def append_metrics(output_dir: Path, record: dict[str, float]) -> None:
    """Append one step's line to the metrics file, synced to disk."""
    with (output_dir / METRICS_FILE).open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_metrics(output_dir: Path, step: int) -> None:
    """Drop metric lines past ``step``: they belong to steps a resume will redo."""
    path = output_dir / METRICS_FILE
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        path.write_text("".join(line + "\n" for line in kept))


def read_metrics(output_dir: Path) -> list[dict[str, float]]:
    """The metrics file of a run, one dict per step."""
    path = output_dir / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line]
