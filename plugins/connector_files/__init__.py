"""Built-in plugin: the ``stdout`` and ``file`` sinks (NDJSON, one message a line)."""

from __future__ import annotations

import connector

from .sinks import FileSinkConfig, StdoutSinkConfig


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(StdoutSinkConfig)
    registry.add(FileSinkConfig)
