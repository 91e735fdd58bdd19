"""The ``typeform_to_segment`` mapper: a ``form_response`` event to a "Form Submitted" track.

``userId`` is the form's hidden field ``user_id`` (``user_id_field``); properties: ``formId``,
``formTitle``, ``responseId`` (the response token), ``submittedAt``, ``answers`` keyed by each
field's ``ref`` (the value in the field named by the answer's ``type``: a choice's label, a list
of labels, a number...), and the other hidden fields. Another event type, or a response without
the user field, is dead-lettered with the reason.
"""

from __future__ import annotations

from typing import Any

import msgspec

import connector


class Definition(msgspec.Struct, frozen=True):
    id: str | None = None
    title: str | None = None


class FormResponse(msgspec.Struct):
    form_id: str
    token: str
    submitted_at: str
    hidden: dict[str, Any] = {}
    definition: Definition = Definition()
    answers: list[dict[str, Any]] = []


class Event(msgspec.Struct):
    event_id: str
    event_type: str
    form_response: FormResponse | None = None


_decode = msgspec.json.Decoder(Event).decode


class TypeformToSegmentConfig(connector.MapperConfig, tag="typeform_to_segment"):
    """``type = "typeform_to_segment"``: ``event`` name, ``user_id_field`` (a hidden field)."""

    event: str = "Form Submitted"
    user_id_field: str = "user_id"

    def build(self, ctx: connector.BuildContext) -> connector.Mapper:
        return TypeformToSegment(self.event, self.user_id_field)


class TypeformToSegment(connector.Mapper):
    def __init__(self, event: str, user_id_field: str):
        self.event = event
        self.user_id_field = user_id_field

    def map(self, record: connector.Record) -> list[dict[str, Any]]:
        try:
            event = _decode(record.body)
        except msgspec.DecodeError as exc:
            raise connector.RecordRejected(f"not a Typeform webhook event: {exc}") from None
        response = event.form_response
        if event.event_type != "form_response" or response is None:
            raise connector.RecordRejected(f"Typeform event type {event.event_type!r} is not a form response")
        user = response.hidden.get(self.user_id_field)
        if not isinstance(user, str) or not user:
            raise connector.RecordRejected(f"the response has no hidden field {self.user_id_field!r}: "
                                           "Segment needs a userId")
        return [{
            "type": "track", "userId": user, "event": self.event, "timestamp": response.submitted_at,
            "properties": {
                "formId": response.form_id, "formTitle": response.definition.title, "responseId": response.token,
                "submittedAt": response.submitted_at, "answers": _answers(response.answers),
                "hidden": {k: v for k, v in response.hidden.items() if k != self.user_id_field},
            },
            "context": {"integration": {"name": "typeform"}},
        }]


def _answers(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Each answer's value by its field's ``ref`` (its id when it has none)."""
    by_ref = {}
    for answer in answers:
        field = answer.get("field") or {}
        key = field.get("ref") or field.get("id")
        if not isinstance(key, str):
            continue
        value = answer.get(answer.get("type", ""))
        if isinstance(value, dict) and "labels" in value:  # choices
            value = [*value.get("labels", []), *([value["other"]] if value.get("other") else [])]
        elif isinstance(value, dict) and ("label" in value or "other" in value):  # choice
            value = value.get("other") or value.get("label")
        by_ref[key] = value
    return by_ref
