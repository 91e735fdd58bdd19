"""The ``sprig_to_segment`` mapper: the track Sprig's Segment Streams sends, per answer.

One mapper for both ways in: an "answer submitted" webhook event and a row of the
``/v1/responses`` export (a record without ``eventType``) each become one track. Any other
event type is dead-lettered with its type as the reason, unless ``ignore_events`` lists it: then
it is dropped on purpose and counted (``connector_filtered_records``).
"""

from __future__ import annotations

from typing import Any

import msgspec

import connector
from connector import RecordRejected

from .schema import ANSWER_SUBMITTED, SprigRecord, normalize, record_decoder

ANONYMOUS = "Segment needs a userId: the Sprig visitor is anonymous (no userId or externalUserId)"


class SprigToSegmentConfig(connector.MapperConfig, tag="sprig_to_segment"):
    """``type = "sprig_to_segment"``; ``event`` is the track's event name; ``ignore_events`` lists
    Sprig event types to drop on purpose (e.g. ``["study seen", "study sent"]``)."""

    event: str = "SDK - Submitted - Survey Response"
    ignore_events: list[str] = []

    def build(self, ctx: connector.BuildContext) -> connector.Mapper:
        return SprigToSegment(self.event, {normalize(e) for e in self.ignore_events})


class SprigToSegment(connector.Mapper):
    """Maps one Sprig answer (webhook event or export row) to one Segment track."""

    def __init__(self, event: str, ignored: set[str]):
        self.event = event
        self.ignored = ignored

    def map(self, record: connector.Record) -> list[dict[str, Any]]:
        try:
            answer = record_decoder.decode(record.body)
        except msgspec.ValidationError as exc:
            raise RecordRejected(f"not a Sprig event or response: {exc}") from None
        kind = self._kind(answer)
        if kind in self.ignored:
            return []
        if kind != ANSWER_SUBMITTED:
            raise RecordRejected(f"Sprig event type {answer.eventType!r} is not an answer; "
                                 "list it in ignore_events to drop it on purpose")
        user_id = answer.userId if _present(answer.userId) else answer.externalUserId
        if not _present(user_id):
            raise RecordRejected(ANONYMOUS)
        question = answer.question if answer.question is not None else answer.questionText
        if question is None and answer.response is None:
            raise RecordRejected("the answer has neither a question nor a response")
        return [{"type": "track", "event": self.event, "userId": str(user_id),
                 "properties": _properties(answer, question), "context": {"integration": {"name": "sprig"}}}]

    @staticmethod
    def _kind(answer: SprigRecord) -> str:
        if answer.eventType is not None:
            return normalize(answer.eventType)
        if answer.questionText is None and answer.question is None:
            raise RecordRejected("not a Sprig answer: it has no eventType and no question")
        return ANSWER_SUBMITTED  # a row of the /v1/responses export


def _properties(answer: SprigRecord, question: str | None) -> dict[str, Any]:
    """The properties Sprig's Segment Streams documents, from a webhook event or an export row."""
    snapshot = answer.visitorSnapshot
    legacy_id = answer.visitorId if isinstance(answer.visitorId, int) and not isinstance(answer.visitorId, bool) else None
    visitor_id = answer.visitorUuid if answer.visitorUuid is not None else (
        answer.visitorId if legacy_id is None else None)
    properties = {
        "surveyName": answer.surveyName,
        "surveyId": answer.surveyId,
        "createdAt": answer.createdAt,
        "question": question,
        "questionType": answer.questionType,
        "visitorId": visitor_id,
        "responseGroupId": answer.responseGroupUid,
        "response": answer.response,
        "email": answer.email,
        "attributes": answer.attributes if answer.attributes is not None or snapshot is None else snapshot.attributes,
        "triggeringEvent": (answer.triggeringEvent if answer.triggeringEvent is not None or snapshot is None
                            else snapshot.triggeringEvent),
    }
    if legacy_id is not None:
        properties["oldVisitorId"] = legacy_id
    return properties


def _present(value: Any) -> bool:
    return value is not None and value != "" and not isinstance(value, (dict, list, bool))
