"""Buffer kinds by ``type`` name: the log between sources and sinks."""

from __future__ import annotations

from .base import Buffer, BufferConfig, CursorTracker, NewRecord
from .memory import MemoryBufferConfig
from .sqlite import SqliteBufferConfig

BUFFER_KINDS: dict[str, type[BufferConfig]] = {
    "sqlite": SqliteBufferConfig,
    "memory": MemoryBufferConfig,
}

__all__ = ["BUFFER_KINDS", "Buffer", "BufferConfig", "CursorTracker", "NewRecord"]
