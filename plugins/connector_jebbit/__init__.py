"""Built-in plugin: Jebbit's signed webhook source and the Jebbit-to-Segment mapper."""

from __future__ import annotations

import connector

from .mapper import JebbitToSegmentConfig
from .source import JebbitSourceConfig


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(JebbitSourceConfig)
    registry.add(JebbitToSegmentConfig)
