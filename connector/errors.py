"""Domain errors: what a user, a sender or a plugin can cause, each with a clear message."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error connector raises on purpose."""


class ConfigError(ConnectorError):
    """A configuration problem; the message names the file, the line when known, and the key."""


class CommandError(ConnectorError):
    """A command cannot do what was asked; the message is one line that names what to fix."""


class PluginError(ConnectorError):
    """A plugin could not be loaded or registered (for example a duplicate type name)."""


class HTTPError(ConnectorError):
    """An answer to a webhook request that is not a success.

    Sources raise it from ``accept``; the ingress answers with ``status`` and the JSON body
    ``{"error": error, "detail": detail}``. ``detail`` must never contain a secret.
    """

    def __init__(self, status: int, error: str, detail: str = "", headers: dict[str, str] | None = None):
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


class RecordRejected(ConnectorError):
    """A mapper or sink refuses a record permanently; it is dead-lettered with ``reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BufferFull(ConnectorError):
    """The buffer reached its size limit; webhook sources answer 503 with Retry-After."""


class BufferInUse(ConnectorError):
    """Another daemon owns the buffer (one daemon per SQLite file); the message names its pid."""


class BufferUnavailable(ConnectorError):
    """The buffer could not store a record (disk full, I/O error, broker unreachable)."""
