"""The ``sqlite`` buffer, a folder of modules with one job each (see ``buffer.py``)."""

from __future__ import annotations

from .buffer import SqliteBuffer, SqliteBufferConfig

__all__ = ["SqliteBuffer", "SqliteBufferConfig"]
