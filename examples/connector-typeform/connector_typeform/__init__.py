"""connector-typeform: Typeform's signed webhooks in, a Segment "Form Submitted" track out.

A worked third-party plugin: it imports only ``connector`` (and ``connector.testing`` in its
tests) and registers through the ``connector`` entry point, as any plugin would.
"""

from __future__ import annotations

import connector

from .mapper import TypeformToSegmentConfig
from .source import TypeformSourceConfig


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(TypeformSourceConfig)
    registry.add(TypeformToSegmentConfig)
