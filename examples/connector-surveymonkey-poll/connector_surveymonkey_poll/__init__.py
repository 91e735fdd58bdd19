"""connector-surveymonkey-poll: SurveyMonkey's bulk responses API, polled; a Segment "Survey Response
Submitted" track out.

A worked third-party plugin: it imports only ``connector`` (and ``connector.testing`` in its
tests) and registers through the ``connector`` entry point, as any plugin would.
"""

from __future__ import annotations

import connector

from .mapper import SurveyMonkeyToSegmentConfig
from .source import SurveyMonkeyResponsesConfig


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(SurveyMonkeyResponsesConfig)
    registry.add(SurveyMonkeyToSegmentConfig)
