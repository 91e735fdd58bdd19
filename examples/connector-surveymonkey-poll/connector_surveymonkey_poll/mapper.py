"""The ``surveymonkey_to_segment`` mapper: a SurveyMonkey response to a "Survey Response Submitted" track.

``userId`` is the response's custom variable ``user_id`` (``user_id_variable``: custom variables
are the survey's, passed on its link as ``?user_id=...``); without it, ``anonymousId`` is the
response's ``recipient_id`` (set by email collectors only; ``""`` or ``"0"`` otherwise, as
SurveyMonkey's examples show). A response with neither is dead-lettered with the reason.

``timestamp`` is ``date_modified``: the moment this version of the response was saved (an edited
response is a new record, and a new track). Properties: ``surveyId``, ``responseId``,
``collectorId``, ``responseStatus`` (``completed``, ``partial``, ``overquota``, ``disqualified``),
``dateCreated``, ``dateModified``, ``totalTime``, ``customVariables`` (the other ones) and
``answers``: each question's answers as SurveyMonkey gives them (``choice_id``, ``row_id``,
``col_id``, ``other_id``, ``text``...), keyed by question id.
"""

from __future__ import annotations

from typing import Any

import msgspec

import connector


class Question(msgspec.Struct, frozen=True):
    id: str | int
    answers: list[Any] = []


class ResponsePage(msgspec.Struct, frozen=True):
    questions: list[Question] = []


class SurveyResponse(msgspec.Struct, frozen=True):
    """The fields of a bulk response the mapper reads (the record keeps them all)."""

    id: str | int
    date_modified: str | None = None
    date_created: str | None = None
    survey_id: str | int | None = None
    collector_id: str | int | None = None
    recipient_id: str | int | None = None
    response_status: str | None = None
    total_time: int | float | None = None
    custom_variables: dict[str, Any] = {}
    pages: list[ResponsePage] = []


_decode = msgspec.json.Decoder(SurveyResponse).decode


class SurveyMonkeyToSegmentConfig(connector.MapperConfig, tag="surveymonkey_to_segment"):
    """``type = "surveymonkey_to_segment"``: ``event`` name, ``user_id_variable`` (a custom variable)."""

    event: str = "Survey Response Submitted"
    user_id_variable: str = "user_id"

    def build(self, ctx: connector.BuildContext) -> connector.Mapper:
        return SurveyMonkeyToSegment(self.event, self.user_id_variable)


class SurveyMonkeyToSegment(connector.Mapper):
    """Maps one stored response to one track."""

    def __init__(self, event: str, user_id_variable: str):
        self.event = event
        self.user_id_variable = user_id_variable

    def map(self, record: connector.Record) -> list[dict[str, Any]]:
        try:
            response = _decode(record.body)
        except msgspec.DecodeError as exc:  # also a ValidationError
            raise connector.RecordRejected(f"not a SurveyMonkey response: {exc}") from None
        user = _present(response.custom_variables.get(self.user_id_variable))
        anonymous = _present(response.recipient_id)
        if anonymous == "0":  # SurveyMonkey's "no recipient" (a response through a web link)
            anonymous = None
        if user is None and anonymous is None:
            raise connector.RecordRejected(f"the response has no custom variable {self.user_id_variable!r} and no "
                                           "recipient_id: Segment needs a userId or an anonymousId")
        identity = {"userId": user} if user is not None else {"anonymousId": anonymous}
        return [{
            "type": "track", **identity, "event": self.event, "timestamp": response.date_modified,
            "properties": {
                "surveyId": _text(response.survey_id), "responseId": str(response.id),
                "collectorId": _text(response.collector_id), "responseStatus": response.response_status,
                "dateCreated": response.date_created, "dateModified": response.date_modified,
                "totalTime": response.total_time,
                "customVariables": {k: v for k, v in response.custom_variables.items() if k != self.user_id_variable},
                "answers": {str(q.id): q.answers for page in response.pages for q in page.questions},
            },
            "context": {"integration": {"name": "surveymonkey"}},
        }]


def _present(value: Any) -> str | None:
    """An identifier as text; None for none at all (missing, empty, not a string or a number)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value).strip() or None


def _text(value: str | int | None) -> str | None:
    return None if value is None else str(value)
