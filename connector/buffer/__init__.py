"""Buffer kinds by ``type`` name: the log between sources and sinks."""

from __future__ import annotations

from .base import Buffer, BufferConfig, CursorTracker, NewRecord
from .memory import MemoryBufferConfig
from .sqlite import SqliteBufferConfig

BUFFER_KINDS: dict[str, type[BufferConfig]] = {
    "sqlite": SqliteBufferConfig,
    "memory": MemoryBufferConfig,
}

try:  # nats-py is the optional extra connector[nats]
    from .nats import NatsBufferConfig
except ImportError:  # pragma: no cover - depends on what is installed
    pass
else:
    BUFFER_KINDS["nats"] = NatsBufferConfig

__all__ = ["BUFFER_KINDS", "Buffer", "BufferConfig", "CursorTracker", "NewRecord"]
