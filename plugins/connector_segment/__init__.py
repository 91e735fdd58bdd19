"""Built-in plugin: the ``segment`` sink (Segment's HTTP Tracking API, batched and retried)."""

from __future__ import annotations

import connector

from .config import SegmentSinkConfig


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(SegmentSinkConfig)
