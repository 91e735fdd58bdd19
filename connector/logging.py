"""Logging with structlog: JSON lines when stdout is not a terminal, console when it is.

Every configured secret value is replaced by ``***`` in every log line, wherever it appears.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class RedactSecrets:
    """A structlog processor that masks the given secret values in every string field."""

    def __init__(self, secrets: Iterable[str]):
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if self.secrets:
            for key, value in event.items():
                if isinstance(value, str):
                    for secret in self.secrets:
                        if secret in value:
                            value = value.replace(secret, "***")
                    event[key] = value
        return event


def configure(level: str = "info", secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Set up structlog for the process; call again after the config is loaded."""
    stream = stream or sys.stderr
    renderer: Any = (structlog.dev.ConsoleRenderer() if stream.isatty()
                     else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            RedactSecrets(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(LEVELS[level], logging.WARNING), stream=stream, format="%(name)s %(levelname)s %(message)s")
