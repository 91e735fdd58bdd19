"""Jebbit: signed deliveries to the running daemon, mapped to the documented Segment messages."""

from __future__ import annotations

import datetime
import hashlib
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
from connector.testing import metric, wait_until
from connector_jebbit.mapper import JebbitToSegment, JebbitToSegmentConfig
from connector_jebbit.schema import delivery_items
from connector_jebbit.signature import sign
from connector_jebbit.source import JebbitSource

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

[sinks.segment]
type = "segment"
inputs = ["jebbit_segment"]
write_key = "test-write-key"
endpoint = "${SEGMENT_ENDPOINT}"
flush_interval = 0.05

[sinks.raw]
type = "file"
inputs = ["jebbit"]
path = "out/raw.ndjson"
"""


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    return {"x-jebbit-signature": sign(secret, body, at)}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def as_sent(message: dict) -> dict:
    """A message as the mapper made it: without what the Segment sink stamps on it."""
    message = {k: v for k, v in message.items() if k != "messageId"}
    context = {k: v for k, v in message["context"].items() if k != "library"}
    return {**message, "context": context} if context else {k: v for k, v in message.items() if k != "context"}


def experience(i: int, **data) -> dict:
    return {"data": {"email": f"user{i}@example.com", "session_id": f"s{i}", **data}, "event": {}}


@pytest.fixture
def daemon(local_daemon_factory, fake_segment):
    return local_daemon_factory(CONFIG, env={"JEBBIT_SHARED_SECRET": SECRET, "SEGMENT_ENDPOINT": fake_segment.url}).start()


def test_signed_delivery_becomes_the_documented_identify_and_track(daemon, fake_segment, tmp_path):
    body = json.dumps(fixture("webhook.json")).encode()
    response = daemon.post("/webhooks/jebbit", body, signed(body))
    assert response.status_code == 200 and response.json() == {"accepted": 1}
    identify, track = wait_until(lambda: len(fake_segment.messages) == 2 and fake_segment.messages)
    assert as_sent(identify) == fixture("identify.json")
    assert as_sent(track) == fixture("track.json")
    assert identify["context"]["library"]["name"] == "connector"
    assert wait_until(lambda: lines(tmp_path / "out" / "raw.ndjson")) == fixture("webhook.json")
    assert fake_segment.violations == []
    assert daemon.stop() == 0


def test_the_documented_test_delivery_is_acknowledged_and_an_ordinary_one_like_it_is_forwarded(daemon, fake_segment):
    body = json.dumps(fixture("test_delivery.json")).encode()
    before = metric(daemon.admin_get("/metrics").text, "connector_test_deliveries_total", source="jebbit")
    response = daemon.post("/webhooks/jebbit", body, {**signed(body), "x-jebbit-test": "true"})
    assert response.status_code == 200 and response.json() == {"accepted": 0, "forwarded": False}
    assert metric(daemon.admin_get("/metrics").text, "connector_test_deliveries_total", source="jebbit") == before + 1
    # the same shape without the test header (Jebbit's backfills and retries) is an ordinary delivery
    assert daemon.post("/webhooks/jebbit", body, signed(body)).json() == {"accepted": 1}
    identify, track = wait_until(lambda: len(fake_segment.messages) == 2 and fake_segment.messages)
    assert identify["traits"] == {"email": "test@example.com", "emailSha256Hash": identify["userId"], "opt_in": "true",
                                  "outcome": "example_outcome", "test_attribute": "attribute_value",
                                  "test_sata_attribute": ["option 1", "option 4"]}
    assert track["properties"]["questions"] == {"test_attribute": "attribute_value",
                                                "test_sata_attribute": ["option 1", "option 4"]}
    assert daemon.stop() == 0


def test_a_malformed_item_is_stored_and_dead_lettered_without_costing_its_siblings(daemon, fake_segment, tmp_path):
    good = {**experience(1, profile={"tier": "gold", "scores": [1, "a", None]}), "uids": {"jebbit_uid": "u-1"}}
    items = [good, "not an experience", {"event": {}}, 42, {"data": {"email": {"x": 1}}}, experience(2)]
    body = json.dumps(items).encode()
    response = daemon.post("/webhooks/jebbit", body, signed(body))
    assert response.status_code == 200 and response.json() == {"accepted": 6}
    wait_until(lambda: len(fake_segment.messages) == 4)
    users = {m["traits"]["email"] for m in fake_segment.messages if m["type"] == "identify"}
    assert users == {"user1@example.com", "user2@example.com"}
    identify = next(m for m in fake_segment.messages if m["type"] == "identify" and m["traits"]["email"].startswith("user1"))
    assert identify["traits"]["profile"] == {"tier": "gold", "scores": [1, "a", None]}
    raw = wait_until(lambda: len(lines(tmp_path / "out" / "raw.ndjson")) == 6 and lines(tmp_path / "out" / "raw.ndjson"))
    assert raw[0] == good  # every top-level key kept, uids included
    listing = wait_until(lambda: daemon.dead_letters().count("jebbit_segment") >= 4 and daemon.dead_letters())
    assert listing.count("not a Jebbit experience") == 3
    assert "the experience has no email: Segment needs a userId" in listing
    assert daemon.stop() == 0


def test_bad_signatures_get_401_malformed_json_400_and_nothing_is_stored(daemon, fake_segment):
    body = json.dumps([experience(1)]).encode()
    now = int(time.time())
    cases = {
        "wrong secret": (body, signed(body, "not-the-secret")),
        "no header": (body, {}),
        "malformed header": (body, {"x-jebbit-signature": "v1=abc"}),
        "a time in digits that are not ASCII": (body, {"x-jebbit-signature": "t=\u00b2,v1=abc".encode("latin-1")}),
        "stale": (body, signed(body, at=now - 400)),
        "future": (body, signed(body, at=now + 400)),
        "tampered body": (body.replace(b"user1", b"user2"), signed(body)),
    }
    for case, (sent, headers) in cases.items():
        response = daemon.post("/webhooks/jebbit", sent, headers)
        assert response.status_code == 401, case
        assert response.json()["error"] == "unauthorized" and response.json()["detail"]
        assert SECRET not in response.text
    for bad in (b'[{"data": ', b"\xff\xfe"):
        response = daemon.post("/webhooks/jebbit", bad, signed(bad))
        assert response.status_code == 400 and response.json()["error"] == "malformed JSON"
    good = json.dumps([experience(9)]).encode()
    assert daemon.post("/webhooks/jebbit", good, signed(good)).status_code == 200
    spaced = {"x-jebbit-signature": signed(good)["x-jebbit-signature"].replace(",", " , ")}
    assert daemon.post("/webhooks/jebbit", good, spaced).status_code == 200
    wait_until(lambda: len(fake_segment.messages) >= 2)
    assert daemon.stop() == 0
    assert {m["traits"]["email"] for m in fake_segment.messages if m["type"] == "identify"} == {"user9@example.com"}


def test_jebbit_send_posts_a_sample_that_is_accepted(daemon, fake_segment):
    result = subprocess.run([sys.executable, "-m", "connector_jebbit.send", "--url",
                             daemon.base_url + "/webhooks/jebbit", "--secret", SECRET],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('200 {"accepted":1}')
    wait_until(lambda: len(fake_segment.messages) == 2)
    assert daemon.stop() == 0


# Unit level: the source and mapper without the daemon ---------------------------------------


def to_record(item) -> Record:
    body = canonical(item)
    return Record(1, record_id("jebbit", body), "jebbit", 0.0, body)


def mapper(**options) -> JebbitToSegment:
    return JebbitToSegment(JebbitToSegmentConfig(inputs=["jebbit"], **options))


def test_single_object_and_stringified_items_are_accepted():
    assert delivery_items(json.dumps(experience(1)).encode()) == [experience(1)]
    assert delivery_items(json.dumps([json.dumps(experience(1)), experience(2), "{oops"]).encode()) == [
        experience(1), experience(2), "{oops"]


def test_sender_retry_with_other_formatting_gets_the_same_record_id():
    compact = json.dumps(experience(1), separators=(",", ":")).encode()
    spaced = json.dumps(experience(1), indent=4, sort_keys=True).encode()
    stringified = json.dumps([json.dumps(experience(1))]).encode()
    ids = {record_id("jebbit", canonical(e)) for body in (compact, spaced, stringified) for e in delivery_items(body)}
    assert len(ids) == 1


def test_require_opt_in_skips_others_and_hash_pii_drops_the_email():
    strict = mapper(require_opt_in=True)
    assert strict.map(to_record(experience(1, opt_in="false"))) == []
    assert len(strict.map(to_record(experience(1, opt_in="true")))) == 2
    identify, track = mapper(hash_pii=True).map(to_record(experience(1, opt_in="true", outcome="o", color="red")))
    assert "email" not in identify["traits"] and identify["traits"]["emailSha256Hash"] == identify["userId"]
    assert identify["traits"]["opt_in"] == "true" and identify["traits"]["color"] == "red"
    assert track["properties"]["questions"] == {"color": "red"} and track["properties"]["outcome"] == "o"


def test_an_email_jebbit_already_hashed_is_taken_as_the_hash():
    digest = hashlib.sha256(b"jane.doe@example.com").hexdigest()
    identify, track = mapper().map(to_record(experience(1, email=digest.upper())))
    assert identify["userId"] == track["userId"] == digest
    assert identify["context"]["externalIds"][0]["id"] == digest
    assert "email" not in identify["traits"] and identify["traits"]["emailSha256Hash"] == digest


def test_computed_fields_win_and_client_user_id_and_url_param_are_track_properties():
    identify, track = mapper().map(to_record(experience(
        1, emailSha256Hash="forged", client_user_id="cu-7", url_param="utm_source=mail")))
    assert identify["traits"]["emailSha256Hash"] == identify["userId"] != "forged"
    assert track["properties"]["client_user_id"] == "cu-7"
    assert track["properties"]["url_param"] == "utm_source=mail"
    assert "client_user_id" not in track["properties"]["questions"]


def test_configurable_source_fields():
    exp = {"data": {"mail": " Jane@Example.com ", "quiz": "q1", "when": "2024-01-02 03:04:05"}}
    identify, track = mapper(email_field="mail", campaign_id_field="quiz", experience_date_field="when").map(to_record(exp))
    assert identify["traits"]["email"] == "Jane@Example.com"
    assert identify["userId"] == hashlib.sha256(b"jane@example.com").hexdigest()
    assert track["properties"]["surveyId"] == "q1" and track["timestamp"] == "2024-01-02T03:04:05.000Z"


def test_experience_dates_in_iso_8601_and_in_a_configured_format():
    assert mapper().map(to_record(experience(1, experience_date="2024-01-02T03:04:05+02:00")))[0]["timestamp"] == \
        "2024-01-02T01:04:05.000Z"
    us = mapper(experience_date_format="%m/%d/%Y %H:%M")
    assert us.map(to_record(experience(1, experience_date="01/02/2024 03:04")))[0]["timestamp"] == "2024-01-02T03:04:00.000Z"
    # a configured format is read first, even for a date shaped like Jebbit's own
    swapped = mapper(experience_date_format="%Y-%d-%m %H:%M:%S")
    assert swapped.map(to_record(experience(1, experience_date="2024-02-01 03:04:05")))[0]["timestamp"] == \
        "2024-01-02T03:04:05.000Z"


@given(st.datetimes(min_value=datetime.datetime(1000, 1, 1), timezones=st.none() | st.timezones()),
       st.sampled_from([" ", "T"]), st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds"]))
def test_every_iso_8601_date_maps_to_its_utc_instant_in_milliseconds(moment, separator, timespec):
    text = moment.isoformat(sep=separator, timespec=timespec)
    read = datetime.datetime.fromisoformat(text)
    utc = read.astimezone(datetime.UTC).replace(tzinfo=None) if read.tzinfo else read
    assert mapper()._timestamp(text) == utc.isoformat(timespec="milliseconds") + "Z"


def test_a_bad_experience_date_is_rejected_naming_the_value_and_the_setting():
    with pytest.raises(RecordRejected, match="is not a date"):
        mapper().map(to_record(experience(1, experience_date="2024-13-02 03:04:05")))
    with pytest.raises(RecordRejected, match="experience_date 'yesterday' is not a date.*experience_date_format"):
        mapper().map(to_record(experience(1, experience_date="yesterday")))
    with pytest.raises(RecordRejected, match="experience_date_format '%d.%m.%Y' does not read it"):
        mapper(experience_date_format="%d.%m.%Y").map(to_record(experience(1, experience_date="yesterday")))


values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), values.map(lambda v: json.dumps(v).encode()),
                 st.lists(st.fixed_dictionaries({"data": st.dictionaries(st.text(max_size=10), values, max_size=5)}),
                          max_size=3).map(lambda v: json.dumps(v).encode())))
def test_a_signed_body_is_refused_only_when_it_is_not_json(body):
    source = JebbitSource("/j", [b"k"], 300)
    request = WebhookRequest({"x-jebbit-signature": sign("k", body)}, body)
    try:
        accepted = source.accept(request)
    except HTTPError as exc:
        assert exc.status == 400 and exc.error == "malformed JSON"
        with pytest.raises((msgspec.DecodeError, UnicodeDecodeError)):
            msgspec.json.decode(body)
    else:
        for item in accepted.records:
            canonical(item)  # every item can be stored


@settings(max_examples=300, deadline=None)
@given(st.one_of(values, st.fixed_dictionaries({"data": st.dictionaries(
    st.sampled_from(["email", "opt_in", "outcome", "campaign_id", "experience_date", "x"]) | st.text(max_size=6),
    values, max_size=8)})), st.booleans(), st.booleans())
def test_mapper_emits_messages_with_a_user_or_rejects_with_a_reason(item, require_opt_in, hash_pii):
    try:
        out = mapper(require_opt_in=require_opt_in, hash_pii=hash_pii).map(to_record(item))
    except RecordRejected as exc:
        assert exc.reason
        return
    for message in out:
        assert isinstance(message["userId"], str) and len(message["userId"]) == 64
        msgspec.json.encode(message)
