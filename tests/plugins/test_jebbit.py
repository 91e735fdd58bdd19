"""Jebbit: signed deliveries to the running daemon, mapped to the documented Segment messages."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import HTTPError, Record, RecordRejected, WebhookRequest
from connector.ids import canonical, record_id
from connector.testing import wait_until
from connector_jebbit.mapper import JebbitToSegment, JebbitToSegmentConfig
from connector_jebbit.signature import sign
from connector_jebbit.source import JebbitSource, decode

FIXTURES = Path(__file__).parent.parent / "fixtures" / "jebbit"
SECRET = "Qq6niUmvrO320lYbBGKha6cdy22Bz8BVBd"
CONFIG = """
[server]
port = {port}

[buffer]
path = "data/connector.db"

[sources.jebbit]
type = "jebbit"
path = "/webhooks/jebbit"
shared_secret = ["old-secret-being-rotated-out", "${JEBBIT_SHARED_SECRET}"]

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[sinks.archive]
type = "file"
inputs = ["jebbit_segment"]
path = "out/messages.ndjson"
"""
ENV = {"JEBBIT_SHARED_SECRET": SECRET}


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    return {"x-jebbit-signature": sign(secret, body, at)}


def messages(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def experience(i: int, **data) -> dict:
    return {"data": {"email": f"user{i}@example.com", "session_id": f"s{i}", **data}, "event": {}}


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory(CONFIG, env=ENV).start()


def test_signed_delivery_becomes_the_documented_identify_and_track(daemon, tmp_path):
    body = json.dumps(fixture("webhook.json")).encode()
    response = daemon.post("/webhooks/jebbit", body, signed(body))
    assert response.status_code == 200 and response.json() == {"accepted": 1}
    out = tmp_path / "out" / "messages.ndjson"
    identify, track = wait_until(lambda: len(messages(out)) == 2 and messages(out))
    assert identify == fixture("identify.json")
    assert track == fixture("track.json")
    assert daemon.stop() == 0


@pytest.mark.parametrize("case", ["wrong secret", "no header", "malformed header", "stale", "future",
                                  "tampered body"])
def test_bad_signatures_get_401_and_nothing_is_stored(daemon, tmp_path, case):
    body = json.dumps([experience(1)]).encode()
    now = int(time.time())
    headers = {
        "wrong secret": signed(body, "not-the-secret"),
        "no header": {},
        "malformed header": {"x-jebbit-signature": "v1=abc"},
        "stale": signed(body, at=now - 301),
        "future": signed(body, at=now + 301),
        "tampered body": signed(body),
    }[case]
    sent = body.replace(b"user1", b"user2") if case == "tampered body" else body
    response = daemon.post("/webhooks/jebbit", sent, headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized" and response.json()["detail"]
    assert SECRET not in response.text
    good = json.dumps([experience(9)]).encode()
    assert daemon.post("/webhooks/jebbit", good, signed(good)).status_code == 200
    out = tmp_path / "out" / "messages.ndjson"
    wait_until(lambda: len(messages(out)) >= 2)
    assert daemon.stop() == 0
    assert {m["traits"]["email"] for m in messages(out) if m["type"] == "identify"} == {"user9@example.com"}


def test_malformed_json_and_wrong_shape_get_400(daemon):
    for body, error, detail in [(b'[{"data": ', "malformed JSON", ""),
                                (b'[{"data": {"email": {"x": 1}}}]', "invalid experience", "at `$[0].data"),
                                (b'[{"event": {}}]', "invalid experience", "data")]:
        response = daemon.post("/webhooks/jebbit", body, signed(body))
        assert response.status_code == 400, response.text
        assert response.json()["error"] == error
        assert detail in response.json()["detail"]
    assert daemon.stop() == 0


def test_test_delivery_is_acknowledged_and_not_forwarded(daemon, tmp_path):
    test_body = json.dumps(["{\"data\":{\"email\":\"test@example.com\",\"test_attribute\":\"attribute_value\","
                            "\"opt_in\":\"true\",\"outcome\":\"example_outcome\"},\"event\":{\"event_number\":0}}"]).encode()
    response = daemon.post("/webhooks/jebbit", test_body, {**signed(test_body), "x-jebbit-test": "true"})
    assert response.status_code == 200 and response.json()["forwarded"] is False
    real = json.dumps([experience(5)]).encode()
    daemon.post("/webhooks/jebbit", real, signed(real))
    out = tmp_path / "out" / "messages.ndjson"
    wait_until(lambda: len(messages(out)) == 2)
    assert "test@example.com" not in out.read_text()
    assert 'connector_test_deliveries_total{source="jebbit"} 1.0' in daemon.get("/metrics").text
    assert daemon.stop() == 0


def test_an_experience_without_email_is_dead_lettered(daemon, tmp_path):
    body = json.dumps([{"data": {"session_id": "x"}}, experience(2)]).encode()
    assert daemon.post("/webhooks/jebbit", body, signed(body)).json() == {"accepted": 2}
    out = tmp_path / "out" / "messages.ndjson"
    wait_until(lambda: len(messages(out)) == 2)

    def dlq_list() -> str:
        return subprocess.run([sys.executable, "-m", "connector", "dlq", "list", "-c", str(daemon.config_path)],
                              capture_output=True, text=True, env=daemon.env).stdout

    listing = wait_until(dlq_list)
    assert "the experience has no email: Segment needs a userId" in listing
    assert daemon.stop() == 0


def test_jebbit_send_posts_a_sample_that_is_accepted(daemon, tmp_path):
    result = subprocess.run([sys.executable, "-m", "connector_jebbit.send", "--url",
                             daemon.base_url + "/webhooks/jebbit", "--secret", SECRET],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('200 {"accepted":1}')
    wait_until(lambda: len(messages(tmp_path / "out" / "messages.ndjson")) == 2)
    assert daemon.stop() == 0


# Unit level: the source and mapper without the daemon ---------------------------------------


def to_record(exp: dict) -> Record:
    body = canonical(msgspec.convert(exp, decode.__globals__["Experience"]))
    return Record(1, record_id("jebbit", body), "jebbit", 0.0, body)


def mapper(**options) -> JebbitToSegment:
    return JebbitToSegment(JebbitToSegmentConfig(inputs=["jebbit"], **options))


def test_single_object_and_stringified_items_are_accepted():
    single = json.dumps(experience(1)).encode()
    assert len(decode(single)) == 1
    assert len(decode(json.dumps([json.dumps(experience(1)), experience(2)]).encode())) == 2


def test_sender_retry_with_other_formatting_gets_the_same_record_id():
    compact = json.dumps(experience(1), separators=(",", ":")).encode()
    spaced = json.dumps(experience(1), indent=4, sort_keys=True).encode()
    ids = {record_id("jebbit", canonical(e)) for body in (compact, spaced) for e in decode(body)}
    assert len(ids) == 1


def test_require_opt_in_skips_others_and_hash_pii_drops_the_email():
    strict = mapper(require_opt_in=True)
    assert strict.map(to_record(experience(1, opt_in="false"))) == []
    assert len(strict.map(to_record(experience(1, opt_in="true")))) == 2
    identify, track = mapper(hash_pii=True).map(to_record(experience(1, opt_in="true", outcome="o", color="red")))
    assert "email" not in identify["traits"] and identify["traits"]["emailSha256Hash"] == identify["userId"]
    assert identify["traits"]["opt_in"] == "true" and identify["traits"]["color"] == "red"
    assert track["properties"]["questions"] == {"color": "red"} and track["properties"]["outcome"] == "o"


def test_configurable_source_fields():
    exp = {"data": {"mail": " Jane@Example.com ", "quiz": "q1", "when": "2024-01-02 03:04:05"}}
    identify, track = mapper(email_field="mail", campaign_id_field="quiz", experience_date_field="when").map(to_record(exp))
    assert identify["traits"]["email"] == "Jane@Example.com"
    assert identify["userId"] == __import__("hashlib").sha256(b"jane@example.com").hexdigest()
    assert track["properties"]["surveyId"] == "q1" and track["timestamp"] == "2024-01-02T03:04:05.000Z"


def test_a_bad_experience_date_is_rejected_with_the_reason():
    with pytest.raises(RecordRejected, match="experience_date 'yesterday' is not a date"):
        mapper().map(to_record(experience(1, experience_date="yesterday")))


values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), values.map(lambda v: json.dumps(v).encode()),
                 st.lists(st.fixed_dictionaries({"data": st.dictionaries(st.text(max_size=10), values, max_size=5)}),
                          max_size=3).map(lambda v: json.dumps(v).encode())))
def test_decoder_raises_only_its_own_validation_error(body):
    source = JebbitSource("/j", [b"k"], 300)
    request = WebhookRequest({"x-jebbit-signature": sign("k", body)}, body)
    try:
        accepted = source.accept(request)
    except HTTPError as exc:
        assert exc.status == 400
    else:
        assert all(hasattr(e, "data") for e in accepted.records)


scalar = st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.text(), max_size=2)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["email", "opt_in", "outcome", "campaign_id", "experience_date", "x"]) | st.text(max_size=6),
                       scalar, max_size=8), st.booleans(), st.booleans())
def test_mapper_never_emits_a_message_without_user_id(data, require_opt_in, hash_pii):
    try:
        out = mapper(require_opt_in=require_opt_in, hash_pii=hash_pii).map(to_record({"data": data}))
    except RecordRejected:
        return
    for message in out:
        assert isinstance(message["userId"], str) and len(message["userId"]) == 64
        msgspec.json.encode(message)
