"""The ``sprig_to_segment`` mapper: the track Sprig's Segment Streams sends, per answer.

A study-submitted event with a ``responses`` list gives one track per response in it.
"""

from __future__ import annotations

from typing import Any

import connector
from connector import RecordRejected

from .schema import event_decoder

ANONYMOUS = "Segment needs a userId: the Sprig visitor is anonymous"
RESPONSE_FIELDS = ("question", "questionType", "response")


class SprigToSegmentConfig(connector.MapperConfig, tag="sprig_to_segment"):
    """``type = "sprig_to_segment"``; ``event`` is the track's event name."""

    event: str = "SDK - Submitted - Survey Response"

    def build(self, ctx: connector.BuildContext) -> connector.Mapper:
        return SprigToSegment(self.event)


class SprigToSegment(connector.Mapper):
    """Maps one Sprig response record to Segment track messages."""

    def __init__(self, event: str):
        self.event = event

    def map(self, record: connector.Record) -> list[dict[str, Any]]:
        event = event_decoder.decode(record.body)
        if event.userId is None or event.userId == "":
            raise RecordRejected(ANONYMOUS)
        base = {
            "surveyName": event.surveyName,
            "surveyId": event.surveyId,
            "createdAt": event.createdAt,
            "question": event.question,
            "questionType": event.questionType,
            "visitorId": event.visitorId,
            "responseGroupId": event.responseGroupUid,
            "response": event.response,
            "email": event.email,
            "attributes": event.attributes,
            "triggeringEvent": event.triggeringEvent,
        }
        answers = event.responses if event.responses is not None else [{}]
        return [self._track(str(event.userId), {**base, **{k: a[k] for k in RESPONSE_FIELDS if k in a}})
                for a in answers]

    def _track(self, user_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        return {"type": "track", "event": self.event, "userId": user_id, "properties": properties,
                "context": {"integration": {"name": "sprig"}}}
