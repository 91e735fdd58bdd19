"""A plugin that registers a sink type named ``file`` again, to test the duplicate check."""

from __future__ import annotations

import connector


class AnotherFileSink(connector.SinkConfig, tag="file"):
    def build(self, ctx: connector.BuildContext) -> connector.Sink:
        raise NotImplementedError


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(AnotherFileSink)
