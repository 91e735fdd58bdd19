"""Built-in plugin: Jebbit's signed webhook source, the Jebbit-to-Segment mapper, and ``connector jebbit``
(``admin/``: the Integrations API from the command line)."""

from __future__ import annotations

import connector

from .mapper import JebbitToSegmentConfig
from .source import JebbitSourceConfig


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(JebbitSourceConfig)
    registry.add(JebbitToSegmentConfig)


@connector.hookimpl
def connector_commands(commands: connector.Commands) -> None:
    from .admin.cli import add_commands

    add_commands(commands)
