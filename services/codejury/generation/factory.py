"""Building the configured backend and generator once, at the entry point."""

from __future__ import annotations

from typing import Literal

from codejury.core.logging import get_logger
from codejury.core.settings import GenerationSettings
from codejury.generation.backends import GenerationBackend
from codejury.generation.generator import Generator

log = get_logger(__name__)

Engine = Literal["transformers", "llamacpp", "openai"]


def choose_engine(
    settings: GenerationSettings, *, llamacpp_installed: bool | None = None
) -> Engine:
    """The engine ``generation.backend`` names; for ``auto`` the fastest that can load the
    model: llama.cpp for a local GGUF model when it is installed, else transformers."""
    if settings.backend != "auto":
        return settings.backend
    from codejury.generation.backends import llamacpp as llamacpp_engine

    installed = llamacpp_engine.available() if llamacpp_installed is None else llamacpp_installed
    return "llamacpp" if installed and llamacpp_engine.is_gguf_model(settings) else "transformers"


def make_backend(settings: GenerationSettings) -> GenerationBackend:
    """The backend ``generation.backend`` names, loaded and checked.

    Raises ModelLoadError (with the reason and the fix) when the model cannot be used,
    so a service stops at start-up instead of failing every request.
    """
    engine = choose_engine(settings)
    backend: GenerationBackend
    details: dict[str, int] = {}
    if engine == "openai":
        from codejury.generation.backends.openai_http import OpenAIBackend

        backend = OpenAIBackend(settings)
    elif engine == "llamacpp":
        from codejury.generation.backends.llamacpp import LlamaCppBackend

        llamacpp = LlamaCppBackend(settings)
        details["engines"] = llamacpp.engines
        backend = llamacpp
    else:
        from codejury.generation.backends.huggingface import TransformersBackend

        backend = TransformersBackend.from_settings(settings)
    info = backend.info
    log.info(
        "generation.model_ready",
        backend=engine,
        model=info.name,
        revision=info.revision,
        context=info.context_length,
        chat_template=info.has_chat_template,
        **details,
    )
    return backend


def make_generator(settings: GenerationSettings) -> Generator:
    return Generator(make_backend(settings), settings)
