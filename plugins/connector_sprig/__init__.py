"""Built-in plugin: Sprig's webhook source, its REST export poller, and the Sprig-to-Segment mapper."""

from __future__ import annotations

import connector

from .export import SprigExportConfig
from .mapper import SprigToSegmentConfig
from .webhook import SprigWebhookConfig


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(SprigWebhookConfig)
    registry.add(SprigExportConfig)
    registry.add(SprigToSegmentConfig)
