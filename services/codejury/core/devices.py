"""Which torch device and dtype a setting means, checked once for every model we load
(generator, reward model, PPO policy). torch is imported only when asked: the core
package does not depend on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codejury.core.errors import ConfigurationError

if TYPE_CHECKING:
    import torch


def choose_device(setting: str, *, field: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU) or a torch device name; ``field`` names
    the setting in the error."""
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError as exc:
        raise ConfigurationError(
            f"{field} {setting!r} is not a torch device: use auto, cpu or cuda:N"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(
            f"{field} is {setting!r} but CUDA is not available here: use cpu or auto"
        )
    return device


def choose_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``auto`` (bfloat16 on a CUDA device that supports it, else float32) or a torch
    dtype name (float32, bfloat16, float16)."""
    import torch

    if setting == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    dtype: torch.dtype = getattr(torch, setting)
    return dtype
