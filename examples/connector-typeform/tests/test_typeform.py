"""connector-typeform: the conformance suites, the documented payload mapped field by field, and a
round trip through the daemon to a fake Segment."""

from __future__ import annotations

import json
from pathlib import Path

from connector.testing import (
    MapperContract,
    SourceContract,
    WebhookHarness,
    build_context,
    make_record,
    wait_until,
)
from connector_typeform.mapper import TypeformToSegmentConfig
from connector_typeform.source import TypeformSourceConfig, signature

PAYLOAD = (Path(__file__).parent / "fixtures" / "form_response.json").read_bytes()
SECRET = "typeform-webhook-secret-0123"


class TestTypeformSource(SourceContract):
    config = TypeformSourceConfig(secret=SECRET)

    def valid_delivery(self):
        return PAYLOAD, self.credentials(PAYLOAD)

    def credentials(self, body):
        return {"typeform-signature": signature(SECRET, body)}

    def bad_credentials(self, body):
        return [{}, {"typeform-signature": signature("another-secret", body)},
                {"typeform-signature": signature(SECRET, body).removeprefix("sha256=")},
                {"typeform-signature": signature(SECRET, body + b" ")}]


class TestTypeformMapper(MapperContract):
    config = TypeformToSegmentConfig(inputs=["typeform"])

    def records(self):
        return [json.loads(PAYLOAD)]

    def rejected(self):
        anonymous = json.loads(PAYLOAD)
        del anonymous["form_response"]["hidden"]["user_id"]
        return [anonymous, {**json.loads(PAYLOAD), "event_type": "form_partial_response"}]


def test_a_secret_being_rotated_and_its_successor_are_both_accepted():
    config = TypeformSourceConfig(secret=["old-secret-0123456789", SECRET])
    with WebhookHarness(config) as harness:
        for secret in ("old-secret-0123456789", SECRET):
            assert harness.post(PAYLOAD, {"typeform-signature": signature(secret, PAYLOAD)}).status_code == 200
        assert len(harness.stored()) == 2


def test_the_documented_payload_becomes_a_form_submitted_track():
    mapper = TypeformToSegmentConfig(inputs=["typeform"]).build(build_context("typeform_segment"))
    [track] = mapper.map(make_record(json.loads(PAYLOAD), source="typeform"))
    assert track == {
        "type": "track", "userId": "user-8731", "event": "Form Submitted", "timestamp": "2026-11-20T10:00:02Z",
        "properties": {
            "formId": "lT4Z3j", "formTitle": "Webhooks example", "responseId": "a3a12ec67a1365927098a606107fac15",
            "submittedAt": "2026-11-20T10:00:02Z", "hidden": {"utm_source": "newsletter"},
            "answers": {"readable_ref_short_text": "Laura", "readable_ref_email": "laura@example.com",
                        "readable_ref_choice": "Blue", "readable_ref_choices": ["Cheese", "Olives"],
                        "readable_ref_number": 3, "readable_ref_yes_no": True},
        },
        "context": {"integration": {"name": "typeform"}},
    }


CONFIG = """
[server]
port = {port}

[buffer]
type = "memory"

[sources.typeform]
type = "typeform"
secret = "%s"

[mappers.typeform_segment]
type = "typeform_to_segment"
inputs = ["typeform"]

[sinks.segment]
type = "segment"
inputs = ["typeform_segment"]
write_key = "test-write-key"
endpoint = "%s"
flush_interval = 0.05
"""


def test_a_signed_response_reaches_segment_through_the_daemon(local_daemon_factory, fake_segment):
    daemon = local_daemon_factory(CONFIG % (SECRET, fake_segment.url),
                                  env={"CONNECTOR_PLUGINS": "connector_typeform"}).start()
    response = daemon.post("/webhooks/typeform", PAYLOAD, {"typeform-signature": signature(SECRET, PAYLOAD)})
    assert response.status_code == 200 and response.json() == {"accepted": 1}
    [message] = wait_until(lambda: fake_segment.messages)
    assert message["userId"] == "user-8731" and message["event"] == "Form Submitted"
    assert fake_segment.violations == []
    assert daemon.stop() == 0
