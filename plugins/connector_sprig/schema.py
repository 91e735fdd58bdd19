"""Sprig's response events as msgspec Structs (the fields of an "answer submitted" webhook).

Records keep every field Sprig sends; the Struct checks the types of the fields we use.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec


class SprigEvent(msgspec.Struct, frozen=True):
    """One Sprig event: an answer (question and response), or a study with ``responses``."""

    eventType: str | None = None
    id: int | str | None = None
    environmentId: str | None = None
    createdAt: str | int | float | None = None
    responseGroupUid: str | None = None
    response: Any = None
    surveyId: int | str | None = None
    surveyName: str | None = None
    question: str | None = None
    questionType: str | None = None
    visitorId: int | str | None = None
    userId: int | str | None = None
    email: str | None = None
    attributes: dict[str, Any] | None = None
    triggeringEvent: str | None = None
    responses: list[dict[str, Any]] | None = None


event_decoder = msgspec.json.Decoder(SprigEvent)
body_decoder = msgspec.json.Decoder(dict[str, Any] | list[dict[str, Any]])

ANSWER_SUBMITTED = "answersubmitted"
STUDY_SUBMITTED = "studysubmitted"
TEST = "test"


def event_kind(event: SprigEvent) -> str:
    """The event type, normalized (``ANSWER_SUBMITTED``, ``answer.submitted`` -> ``answersubmitted``).

    An event without ``eventType`` that carries a question or responses is an answer submitted.
    """
    if event.eventType:
        return normalize(event.eventType)
    return STUDY_SUBMITTED if event.responses is not None else ANSWER_SUBMITTED


def normalize(event_type: str) -> str:
    return re.sub(r"[^a-z0-9]", "", event_type.lower())
