"""Buffer kinds by ``type`` name: the log between sources and sinks."""

from __future__ import annotations

import importlib.util

from .base import Buffer, BufferConfig, CursorTracker, NewRecord
from .memory import MemoryBufferConfig
from .nats import NatsBufferConfig
from .sqlite import SqliteBufferConfig

BUFFER_KINDS: dict[str, type[BufferConfig]] = {
    "sqlite": SqliteBufferConfig,
    "memory": MemoryBufferConfig,
}

if importlib.util.find_spec("nats") is not None:  # nats-py is the optional extra connector[nats]
    BUFFER_KINDS["nats"] = NatsBufferConfig

__all__ = ["BUFFER_KINDS", "Buffer", "BufferConfig", "CursorTracker", "NewRecord"]
