"""Sprig's records as msgspec Structs: a webhook event, or a row of the ``/v1/responses`` export.

Records are stored whole, with every field Sprig sends; ``SprigRecord`` reads the fields the
mapper uses from either shape (the export names the question ``questionText``, the user
``externalUserId`` and the visitor ``visitorUuid``, with the legacy integer ``visitorId``).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec


class VisitorSnapshot(msgspec.Struct, frozen=True):
    """What ``with_snapshots=true`` adds to an export row: the visitor at delivery time."""

    attributes: dict[str, Any] | None = None
    triggeringEvent: str | None = None


class SprigRecord(msgspec.Struct, frozen=True):
    """One stored Sprig record: a webhook event (``eventType`` set) or an exported response."""

    eventType: str | None = None
    createdAt: Any = None
    responseGroupUid: str | None = None
    response: Any = None
    surveyId: Any = None
    surveyName: str | None = None
    question: str | None = None
    questionText: str | None = None
    questionType: str | None = None
    visitorId: Any = None
    visitorUuid: str | None = None
    userId: Any = None
    externalUserId: Any = None
    email: str | None = None
    attributes: dict[str, Any] | None = None
    triggeringEvent: str | None = None
    visitorSnapshot: VisitorSnapshot | None = None


record_decoder = msgspec.json.Decoder(SprigRecord)
body_decoder = msgspec.json.Decoder()

ANSWER_SUBMITTED = "answersubmitted"
TEST = "test"


def normalize(event_type: str) -> str:
    """An event type without case or separators: ``ANSWER_SUBMITTED``, ``answer submitted`` ->
    ``answersubmitted``."""
    return re.sub(r"[^a-z0-9]", "", event_type.lower())


def is_test(item: Any) -> bool:
    """Sprig's "Test Webhook" delivery (``"eventType": "TEST"``)."""
    return isinstance(item, dict) and isinstance(item.get("eventType"), str) and normalize(item["eventType"]) == TEST
