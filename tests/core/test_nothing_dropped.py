"""Nothing acknowledged is dropped: arbitrary JSON with valid credentials to every webhook source.

For every 2xx, each stored record ends forwarded to Segment, dead-lettered with a reason, or
counted as filtered by a filter the user configured; per source the three add up to what was
acknowledged. Hypothesis makes the bodies: any JSON, and JSON near each vendor's shape; a jq
mapper's source is among them.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connector.testing import DaemonProcess, metric, wait_until
from connector_segment.testing import FakeSegment
from connector_jebbit.signature import sign

JEBBIT_SECRET = "jebbit-shared-secret-0123456789"
SPRIG_SECRET = "sprig-api-secret-0123456789"
EVENTS_TOKEN = "events-bearer-token-0123456789"
CONFIG = """
[server]
port = {port}

[sources.jebbit]
type = "jebbit"
shared_secret = "%s"

[sources.sprig]
type = "sprig"
api_secret = "%s"

[sources.events]
type = "webhook"
path = "/webhooks/events"
bearer_token = "%s"

[sources.forms]
type = "webhook"
path = "/webhooks/forms"
bearer_token = "%s"

[mappers.forms_segment]
type = "jq"
inputs = ["forms"]
program = 'if .skip == true then empty else {type: "track", userId: .user, event: "Form Sent"} end'

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]
require_opt_in = true

[mappers.sprig_segment]
type = "sprig_to_segment"
inputs = ["sprig"]
ignore_events = ["study seen"]

[sinks.segment]
type = "segment"
inputs = ["jebbit_segment", "sprig_segment", "events", "forms_segment"]
write_key = "test-write-key"
endpoint = "%s"
flush_interval = 0.05
"""
ROUTE_OF = {"jebbit": "jebbit_segment", "sprig": "sprig_segment", "events": "events", "forms": "forms_segment"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
emails = st.sampled_from(["jane@example.com", " Bob@Example.com ", "", hashlib.sha256(b"x").hexdigest()]) | json_values
experience = st.fixed_dictionaries(
    {"data": st.fixed_dictionaries({}, optional={
        "email": emails, "opt_in": st.sampled_from(["true", "false", "yes"]) | json_values,
        "experience_date": st.sampled_from(["2024-01-02 03:04:05", "2024-01-02T03:04:05Z", "soon"]) | json_values,
        "campaign_id": json_values, "favorite": json_values})},
    optional={"event": json_values, "uids": json_values})
jebbit_item = experience | experience.map(json.dumps) | json_values
sprig_event = st.fixed_dictionaries({}, optional={
    "eventType": st.sampled_from(["ANSWER_SUBMITTED", "answer.submitted", "STUDY_SEEN", "STUDY_SENT", "TEST"]) | st.text(max_size=8),
    "userId": st.sampled_from(["u1", "", None]) | json_values, "externalUserId": json_values,
    "question": st.sampled_from(["How?", None]) | json_values, "questionText": json_values,
    "response": json_values, "attributes": json_values, "visitorSnapshot": json_values})
segment_message = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["track", "identify", "page", "group", "alias", "nope"]) | json_values,
    "userId": st.sampled_from(["u1", ""]) | json_values, "anonymousId": json_values,
    "event": st.sampled_from(["Tested"]) | json_values, "groupId": json_values, "previousId": json_values})
form = st.fixed_dictionaries({}, optional={"user": st.sampled_from(["u1", ""]) | json_values,
                                            "skip": st.booleans() | json_values})
deliveries = st.one_of(
    st.tuples(st.just("forms"), st.one_of(st.lists(form | json_values, max_size=4), form, json_values)),
    st.tuples(st.just("jebbit"), st.one_of(st.lists(jebbit_item, max_size=4), jebbit_item)),
    st.tuples(st.just("sprig"), st.one_of(st.lists(sprig_event | json_values, max_size=4), sprig_event, json_values)),
    st.tuples(st.just("events"), st.one_of(st.lists(segment_message | json_values, max_size=4), segment_message,
                                          json_values)),
)


def post(daemon: DaemonProcess, source: str, value) -> httpx.Response:
    body = json.dumps(value).encode()
    headers = {"content-type": "application/json"}
    if source == "jebbit":
        headers["x-jebbit-signature"] = sign(JEBBIT_SECRET, body)
    elif source == "sprig":
        headers["authorization"] = f"Bearer {SPRIG_SECRET}"
    else:  # the generic sources
        headers["authorization"] = f"Bearer {EVENTS_TOKEN}"
    return httpx.post(f"{daemon.base_url}/webhooks/{source}", content=body, headers=headers)


def outcomes(daemon: DaemonProcess, fake: FakeSegment) -> dict[str, collections.Counter]:
    """Per source: records forwarded, dead-lettered (with a reason) and filtered."""
    counts = {source: collections.Counter() for source in ROUTE_OF}
    for message in list(fake.messages):
        for source, route in ROUTE_OF.items():
            if message["messageId"].startswith(source + "-") and message["messageId"].endswith(f"-{route}-0"):
                counts[source]["forwarded"] += 1
    listing = daemon.dead_letters()
    for line in listing.splitlines():
        _, sink, record, _, _, reason = line.split("\t", 5)
        assert sink == "segment" and reason.strip(), line
        counts[re.match(r"[a-z]+", record).group()]["dead"] += 1
    text = daemon.admin_get("/metrics").text
    for source, route in ROUTE_OF.items():
        counts[source]["filtered"] += int(metric(text, "connector_filtered_records_total", mapper=route))
    return counts


def test_every_acknowledged_record_is_forwarded_dead_lettered_or_filtered(tmp_path):
    fake = FakeSegment().start()
    daemon = DaemonProcess(tmp_path, CONFIG % (JEBBIT_SECRET, SPRIG_SECRET, EVENTS_TOKEN, EVENTS_TOKEN, fake.url)).start()
    acknowledged: collections.Counter[str] = collections.Counter()
    try:
        @settings(max_examples=75, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(deliveries)
        @example(("jebbit", [{"data": {"email": "jane@example.com", "opt_in": "true"}, "event": {}}]))
        @example(("sprig", {"eventType": "ANSWER_SUBMITTED", "userId": "u1", "question": "How?", "response": 5}))
        @example(("events", {"type": "track", "userId": "u1", "event": "Tested"}))
        @example(("forms", [{"user": "u1"}, {"skip": True}, 5]))
        def deliver(delivery):
            source, value = delivery
            response = post(daemon, source, value)
            assert response.status_code in (200, 400), (response.status_code, response.text)
            answer = response.json()
            if response.status_code == 200:
                acknowledged[source] += answer["accepted"]
            else:
                assert answer["error"] and answer["detail"]

        deliver()
        assert sum(acknowledged.values()) > 0

        def settled():
            counts = outcomes(daemon, fake)
            return all(sum(counts[s].values()) == acknowledged[s] for s in ROUTE_OF) and counts

        try:
            counts = wait_until(settled, timeout=60, interval=0.5)
        except AssertionError:
            raise AssertionError(f"acknowledged {dict(acknowledged)}, outcomes {outcomes(daemon, fake)}") from None
        received = daemon.admin_get("/metrics").text
        for source in ROUTE_OF:
            assert metric(received, "connector_component_received_events_total", component=source) == acknowledged[source]
        assert fake.violations == []
        assert all(counts[source]["forwarded"] > 0 for source in ROUTE_OF), counts
        assert daemon.stop() == 0
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()
        fake.stop()
