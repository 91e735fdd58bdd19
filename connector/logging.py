"""Logging with structlog: JSON lines when stdout is not a terminal, console when it is.

Every configured secret value is replaced by ``***`` in every log line. A secret of 16
characters or more is masked wherever it appears; a shorter one only where it stands alone (not
inside a longer word), so that a one-letter secret does not turn ``SIGTERM`` into ``***IGTERM``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
MASKED_ANYWHERE = 16  # secrets at least this long are masked even inside other text


class RedactSecrets:
    """A structlog processor that masks the given secret values in every string field."""

    def __init__(self, secrets: Iterable[str]):
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.secrets = ordered
        self.pattern = re.compile("|".join(
            re.escape(s) if len(s) >= MASKED_ANYWHERE else rf"(?<!\w){re.escape(s)}(?!\w)" for s in ordered
        )) if ordered else None

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if self.pattern is not None:
            for key, value in event.items():
                if isinstance(value, str):
                    event[key] = self.text(value)
        return event

    def text(self, value: str) -> str:
        """``value`` with the secrets masked."""
        if self.pattern is not None and any(secret in value for secret in self.secrets):
            return self.pattern.sub("***", value)
        return value


_redactor = RedactSecrets(())


def redact(value: str) -> str:
    """``value`` with the configured secrets masked, for text shown outside the log (``/status``)."""
    return _redactor.text(value)


def logger(component: str) -> Any:
    """A structlog logger bound to a component name."""
    return structlog.get_logger("connector").bind(component=component)


class ProcessFields:
    """A structlog processor that adds which daemon process logs: its role and pid."""

    def __init__(self, role: str):
        self.role = role
        self.pid = os.getpid()

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        event["process"] = self.role
        event["pid"] = self.pid
        return event


def configure(level: str = "info", secrets: Iterable[str] = (), stream: Any = None, role: str | None = None) -> None:
    """Set up structlog for the process; call again after the config is loaded.

    ``role`` (``daemon``, ``ingest``, ``delivery``) and the pid go into every line of a daemon
    process, so the lines of its two processes can be told apart.
    """
    global _redactor
    stream = stream or sys.stderr
    _redactor = RedactSecrets(secrets)
    process: list[Any] = [ProcessFields(role)] if role else []
    renderer: Any = (structlog.dev.ConsoleRenderer() if stream.isatty()
                     else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *process,
            structlog.processors.format_exc_info,
            _redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(LEVELS[level], logging.WARNING), stream=stream, format="%(name)s %(levelname)s %(message)s")
