"""Built-in plugin: the ``jq`` mapper (a vendor without a plugin, mapped in the config alone)."""

from __future__ import annotations

import connector

from .mapper import JqMapperConfig


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(JqMapperConfig)
