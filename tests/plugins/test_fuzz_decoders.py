"""Hypothesis fuzzing of the decoders Jebbit's tests do not cover: Sprig and the generic webhook."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from connector import HTTPError, Record, RecordRejected, WebhookRequest
from connector.ids import canonical, record_id
from connector_sprig.mapper import SprigToSegment
from connector_sprig.webhook import SprigWebhook
from connector_webhook.source import GenericWebhook, WebhookSourceConfig

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
sprig_fields = st.fixed_dictionaries({}, optional={
    "eventType": st.sampled_from(["TEST", "answer.submitted", "STUDY_SUBMITTED", "study seen"]) | st.text(max_size=5),
    "userId": st.none() | st.text(max_size=5) | st.integers(),
    "question": st.none() | st.text(max_size=5) | st.integers(),
    "response": json_values,
    "attributes": st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3) | st.integers(),
    "questionText": st.none() | st.text(max_size=5),
    "externalUserId": st.none() | st.text(max_size=5),
    "visitorSnapshot": st.none() | st.dictionaries(st.sampled_from(["attributes", "triggeringEvent"]), json_values),
    "surveyId": st.none() | st.integers() | st.text(max_size=4) | st.booleans(),
})
bodies = st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                   sprig_fields.map(lambda v: json.dumps(v).encode()),
                   st.lists(sprig_fields, max_size=3).map(lambda v: json.dumps(v).encode()))


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_sprig_webhook_stores_any_json_and_the_mapper_tracks_or_says_why_not(body):
    source = SprigWebhook("/s", [b"Bearer k"])
    try:
        accepted = source.accept(WebhookRequest({"authorization": "Bearer k"}, body))
    except HTTPError as exc:
        assert exc.status == 400 and exc.error == "malformed JSON"
        return
    mapper = SprigToSegment("SDK - Submitted - Survey Response", {"studyseen"})
    for event in accepted.records:
        content = canonical(event)
        try:
            messages = mapper.map(Record(1, record_id("sprig", content), "sprig", 0.0, content))
        except RecordRejected as exc:
            assert exc.reason
            continue
        assert all(isinstance(m["userId"], str) and m["userId"] for m in messages)
        assert all(m["properties"]["question"] is not None or m["properties"]["response"] is not None
                   for m in messages)


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_generic_webhook_accepts_json_or_says_400(body):
    source = GenericWebhook(WebhookSourceConfig(path="/w"), None)
    try:
        accepted = source.accept(WebhookRequest({}, body))
    except HTTPError as exc:
        assert exc.status == 400
    else:
        for record in accepted.records:
            canonical(record)
