"""Building the configured backend and generator once, at the entry point."""

from __future__ import annotations

from codejury.core.logging import get_logger
from codejury.core.settings import GenerationSettings
from codejury.generation.backends import GenerationBackend
from codejury.generation.generator import Generator

log = get_logger(__name__)


def make_backend(settings: GenerationSettings) -> GenerationBackend:
    """The backend ``generation.backend`` names, loaded and checked.

    Raises ModelLoadError (with the reason and the fix) when the model cannot be used,
    so a service stops at start-up instead of failing every request.
    """
    backend: GenerationBackend
    if settings.backend == "openai":
        from codejury.generation.backends.openai_http import OpenAIBackend

        backend = OpenAIBackend(settings)
    else:
        from codejury.generation.backends.huggingface import TransformersBackend

        backend = TransformersBackend.from_settings(settings)
    info = backend.info
    log.info(
        "generation.model_ready",
        backend=settings.backend,
        model=info.name,
        revision=info.revision,
        context=info.context_length,
        chat_template=info.has_chat_template,
    )
    return backend


def make_generator(settings: GenerationSettings) -> Generator:
    return Generator(make_backend(settings), settings)
