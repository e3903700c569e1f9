"""Structured logging: structlog over the standard library, configured once per process.

Key-value events (``log.info("consumer.started", topic=..., group=...)``) render as
aligned text for people or as one JSON object per line for log collectors.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from codejury.core.settings import Settings


def configure_logging(settings: Settings) -> None:
    """Route structlog and stdlib logging to stderr at the configured level and format."""
    level = getattr(logging, settings.log_level)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        # Plain tracebacks: rich ones print local variables, i.e. submitted programs.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every refused connection while a broker starts as an ERROR; what
    # matters reaches us as exceptions, converted in codejury.bus with a fix in the message.
    logging.getLogger("kafka").setLevel(
        logging.WARNING if level <= logging.DEBUG else logging.CRITICAL
    )
    # httpx logs every request at INFO (the llamacpp backend tokenizes over its server's
    # loopback port, the openai backend samples over HTTP); failures reach us as exceptions.
    logging.getLogger("httpx").setLevel(
        logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger bound to ``name`` (use the module's ``__name__``)."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
