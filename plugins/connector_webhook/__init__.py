"""Built-in plugin: the generic ``webhook`` source (any JSON, optional bearer or HMAC auth)."""

from __future__ import annotations

import connector

from .source import WebhookSourceConfig


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(WebhookSourceConfig)
