"""Sprig: documented webhooks and export pages through the running daemon, to a fake Segment."""

from __future__ import annotations

import datetime
import json
import sqlite3
from pathlib import Path

import pytest

from connector import Record, RecordRejected
from connector.ids import canonical, record_id
from connector.testing import metric, run_command, wait_until
from connector_sprig.mapper import SprigToSegment
from support.fake_sprig import FakeSprigAPI

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sprig"
SECRET = "sprig-api-secret-0123456789"
AUTH = {"authorization": f"Bearer {SECRET}"}
EVENT = "SDK - Submitted - Survey Response"
SPRIG = {"integration": {"name": "sprig"}}
WEBHOOK = """
[server]
port = {port}

[sources.sprig]
type = "sprig"
api_secret = "${SPRIG_WEBHOOK_SECRET}"

[mappers.sprig_segment]
type = "sprig_to_segment"
inputs = ["sprig"]
ignore_events = ["Study seen"]

[sinks.segment]
type = "segment"
inputs = ["sprig_segment"]
write_key = "test-write-key"
endpoint = "${SEGMENT_ENDPOINT}"
flush_interval = 0.05

[sinks.raw]
type = "file"
inputs = ["sprig"]
path = "out/raw.ndjson"
"""


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def as_sent(message: dict) -> dict:
    """A message as the mapper made it: without what the Segment sink stamps on it."""
    context = {k: v for k, v in message["context"].items() if k != "library"}
    return {**{k: v for k, v in message.items() if k != "messageId"}, "context": context}


@pytest.fixture
def daemon(local_daemon_factory, fake_segment):
    env = {"SPRIG_WEBHOOK_SECRET": SECRET, "SEGMENT_ENDPOINT": fake_segment.url}
    return local_daemon_factory(WEBHOOK, env=env).start()


def test_answer_submitted_becomes_the_sprig_streams_track(daemon, fake_segment):
    assert daemon.post("/webhooks/sprig", json.dumps(fixture("webhook_answer_submitted.json")), AUTH).json() == {"accepted": 1}
    (track,) = wait_until(lambda: fake_segment.messages)
    assert as_sent(track) == {
        "type": "track", "event": EVENT, "userId": "2603", "context": SPRIG,
        "properties": {
            "surveyName": "Onboarding NPS", "surveyId": 1, "createdAt": "2026-11-20T10:00:00.000Z",
            "question": "What options did you prefer?", "questionType": "MULTIPLECHOICE",
            "visitorId": "ba050493-0292-4099-9262-8e18c7406e81",
            "responseGroupId": "9fa86a17-82b1-423a-979a-30ee35ada562", "response": "Option 2",
            "email": "jane.doe@example.com", "attributes": {"plan": "pro", "role": "admin"},
            "triggeringEvent": "checkout_completed",
        },
    }
    assert fake_segment.violations == []
    assert daemon.stop() == 0


def test_every_documented_event_type_is_stored_and_none_vanishes(daemon, fake_segment, tmp_path):
    filtered_before = metric(daemon.admin_get("/metrics").text, "connector_filtered_records_total", mapper="sprig_segment",
                             sink="segment")
    response = daemon.post("/webhooks/sprig", json.dumps(fixture("webhook_test.json")), AUTH)
    assert response.status_code == 200 and response.json() == {"accepted": 0, "forwarded": False}
    others = ["study_submitted", "study_sent", "study_seen", "theme_identified", "study_status_changed"]
    for name in others:
        assert daemon.post("/webhooks/sprig", json.dumps(fixture(f"webhook_{name}.json")), AUTH).json() == {"accepted": 1}
    raw = wait_until(lambda: len(lines(tmp_path / "out" / "raw.ndjson")) == 5 and lines(tmp_path / "out" / "raw.ndjson"))
    assert raw == [fixture(f"webhook_{name}.json") for name in others]  # stored whole
    listing = wait_until(lambda: daemon.dead_letters().count("is not an answer") == 4 and daemon.dead_letters())
    for event_type in ("STUDY_SUBMITTED", "STUDY_SENT", "THEME_IDENTIFIED", "STUDY_STATUS_CHANGED"):
        assert f"Sprig event type '{event_type}' is not an answer" in listing
    assert "STUDY_SEEN" not in listing  # ignore_events: dropped on purpose, and counted
    filtered = metric(daemon.admin_get("/metrics").text, "connector_filtered_records_total", mapper="sprig_segment",
                      sink="segment")
    assert filtered == filtered_before + 1
    assert fake_segment.messages == []
    assert daemon.stop() == 0


def test_wrong_or_missing_bearer_gets_401_and_nothing_is_stored(daemon, fake_segment):
    body = json.dumps(fixture("webhook_answer_submitted.json"))
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": SECRET}):
        response = daemon.post("/webhooks/sprig", body, headers)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
        assert SECRET not in response.text
    assert daemon.post("/webhooks/sprig", b"{not json", AUTH).status_code == 400
    status = daemon.admin_get("/status").json()["sources"]["sprig"]
    assert status["received"] == 0 and status["last_refused"]["status"] == 400
    assert daemon.stop() == 0


def test_anonymous_and_unreadable_answers_are_stored_and_dead_lettered_with_the_reason(daemon, fake_segment):
    answer = fixture("webhook_answer_submitted.json")
    batch = [{**answer, "userId": None, "id": 1}, {**answer, "attributes": "not an object", "id": 2},
             {**answer, "question": None, "response": None, "id": 3}, answer]
    assert daemon.post("/webhooks/sprig", json.dumps(batch), AUTH).json() == {"accepted": 4}
    wait_until(lambda: fake_segment.messages)
    listing = wait_until(lambda: daemon.dead_letters().count("sprig_segment") == 3 and daemon.dead_letters())
    assert "Segment needs a userId: the Sprig visitor is anonymous" in listing
    assert "$.attributes" in listing
    assert "neither a question nor a response" in listing
    assert daemon.stop() == 0


# The export poller ---------------------------------------------------------------------------

EXPORT = """
[server]
port = {port}

[sources.sprig_api]
type = "sprig_export"
api_key = "sprig-export-key-0123"
base_url = "%s"
start = 1577836800000
limit = 100
poll_interval = 0.2

[mappers.sprig_segment]
type = "sprig_to_segment"
inputs = ["sprig_api"]

[sinks.segment]
type = "segment"
inputs = ["sprig_segment"]
write_key = "test-write-key"
endpoint = "%s"
flush_interval = 0.05
"""
KEY = "sprig-export-key-0123"


@pytest.fixture
def sprig_api():
    api = FakeSprigAPI(fixture("responses_page.json")["data"] + fixture("responses_with_snapshots.json")["data"],
                       api_key=KEY).start()
    yield api
    api.stop()


def test_exported_responses_become_tracks_and_later_ones_arrive_after_empty_windows(local_daemon_factory, fake_segment,
                                                                                    sprig_api):
    daemon = local_daemon_factory(EXPORT % (sprig_api.url, fake_segment.url)).start()
    tracks = wait_until(lambda: len(fake_segment.messages) == 3 and fake_segment.messages)
    by_question_type = {m["properties"]["questionType"]: as_sent(m) for m in tracks}
    assert by_question_type["MULTIPLECHOICE"] == {
        "type": "track", "event": EVENT, "userId": "2603", "context": SPRIG,
        "properties": {
            "surveyName": None, "surveyId": 1, "createdAt": "2022-07-27T21:12:10.875Z",
            "question": "What options did you prefer?", "questionType": "MULTIPLECHOICE",
            "visitorId": "ba050493-0292-4099-9262-8e18c7406e81", "oldVisitorId": 0,
            "responseGroupId": "b96b109f-040c-412a-9ca4-4d694ccaec90", "response": "Option 2",
            "email": None, "attributes": None, "triggeringEvent": None,
        },
    }
    snapshot = by_question_type["NPS"]["properties"]
    assert snapshot["attributes"] == {"plan": "pro"} and snapshot["triggeringEvent"] == "event"
    assert snapshot["question"] == "How likely are you to recommend Luke Test to a friend or colleague?"
    assert all(r.query["with_snapshots"] == "true" for r in sprig_api.requests)
    # the four documented rows without a user (null, missing, '') are dead letters, not silence
    assert wait_until(lambda: daemon.dead_letters().count("the Sprig visitor is anonymous") == 4)
    # empty windows answer 404: the poller moves past them, and a response created later arrives
    wait_until(lambda: sum(1 for r in sprig_api.requests if r.status == 404) >= 2)
    later = {**fixture("responses_page.json")["data"][0], "responseGroupUid": "later-group",
             "createdAt": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    sprig_api.add([later])
    wait_until(lambda: len(fake_segment.messages) == 4)
    assert fake_segment.messages[-1]["properties"]["responseGroupId"] == "later-group"
    assert fake_segment.violations == []
    assert daemon.stop() == 0


def test_a_refused_key_pauses_the_source_in_status_until_it_works(local_daemon_factory, fake_segment, sprig_api):
    sprig_api.refuse()
    daemon = local_daemon_factory(EXPORT % (sprig_api.url, fake_segment.url)).start()
    status = wait_until(lambda: (r := daemon.admin_get("/status")).json()["sources"]["sprig_api"]["paused"] and r)
    assert "Sprig refused the export request (HTTP 403" in status.json()["sources"]["sprig_api"]["paused"]
    assert KEY not in status.text
    shown = run_command("status", "-c", str(daemon.config_path))
    row = next(line for line in shown.stdout.splitlines() if line.startswith("sprig_api "))
    assert "PAUSED Sprig refused the export request (HTTP 403" in row, shown.stdout
    assert "FAILED Sprig refused the export request (HTTP 403" in row, shown.stdout  # the last poll's outcome
    sprig_api.accept()
    wait_until(lambda: daemon.admin_get("/status").json()["sources"]["sprig_api"]["paused"] is None, timeout=20)
    wait_until(lambda: len(fake_segment.messages) == 3)
    shown = run_command("status", "-c", str(daemon.config_path))
    assert "POLLING SOURCE" in shown.stdout and "CURSOR" in shown.stdout
    row = next(line for line in shown.stdout.splitlines() if line.startswith("sprig_api "))
    assert " polling " in row and " stored " in row and '{"start":' in row, shown.stdout
    assert daemon.stop() == 0


def export_row(i: int) -> dict:
    moment = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=i)
    return {**fixture("responses_page.json")["data"][0], "responseGroupUid": f"rg-{i}",
            "createdAt": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")}


def stored(db) -> list[dict]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM records WHERE source = 'sprig_api'")]


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_export_poller_survives_sigkill_without_skipping_or_repeating_a_page(daemon_factory, tmp_path):
    api = FakeSprigAPI([export_row(i) for i in range(2500)], api_key=KEY).start()
    api.delay = 0.05
    api.fail(503)
    api.fail(429, retry_after=0.3)
    try:
        config = EXPORT % (api.url, "http://127.0.0.1:9")
        db = tmp_path / "data" / "connector.db"
        first = daemon_factory(config).start()
        wait_until(lambda: len(stored(db)) >= 1000, timeout=60)
        first.kill()
        killed_at = len(stored(db))
        assert killed_at < 2500, "the kill must land mid-way"
        daemon_factory(config).start()
        wait_until(lambda: len(stored(db)) >= 2500, timeout=60)
        polls = len(api.requests)
        wait_until(lambda: len(api.requests) >= polls + 2)  # further polls find nothing new
        groups = [r["responseGroupUid"] for r in stored(db)]
        assert len(groups) == 2500 and len(set(groups)) == 2500
        assert [r.status for r in api.requests[:2]] == [503, 429]
    finally:
        api.stop()


# The mapper, without the daemon ---------------------------------------------------------------


def mapped(item, ignored=()):
    body = canonical(item)
    return SprigToSegment(EVENT, set(ignored)).map(Record(1, record_id("sprig", body), "sprig", 0.0, body))


def test_event_types_are_compared_without_case_or_separators():
    answer = fixture("webhook_answer_submitted.json")
    for spelling in ("answer.submitted", "Answer submitted", "answerSubmitted"):
        assert mapped({**answer, "eventType": spelling})[0]["userId"] == "2603"
    assert mapped(fixture("webhook_study_seen.json"), ignored={"studyseen"}) == []
    with pytest.raises(RecordRejected, match="'STUDY_SEEN' is not an answer; list it in ignore_events"):
        mapped(fixture("webhook_study_seen.json"))


def test_records_that_are_no_sprig_answer_are_rejected_with_a_reason():
    for item, reason in [([1, 2], "not a Sprig event or response"), ({"surveyId": 1}, "no eventType and no question"),
                         ({**export_row(1), "externalUserId": ""}, "anonymous")]:
        with pytest.raises(RecordRejected, match=reason):
            mapped(item)


def test_two_export_sources_poll_side_by_side_and_stop_cleanly(local_daemon_factory, fake_segment, sprig_api):
    config = EXPORT.replace('''[mappers.sprig_segment]
type = "sprig_to_segment"
inputs = ["sprig_api"]''', '''[sources.sprig_api_eu]
type = "sprig_export"
api_key = "sprig-export-key-0123"
base_url = "%s"
start = 1577836800000
poll_interval = 0.2

[mappers.sprig_segment]
type = "sprig_to_segment"
inputs = ["sprig_api", "sprig_api_eu"]''')
    daemon = local_daemon_factory(config % (sprig_api.url, sprig_api.url, fake_segment.url)).start()

    def per_source():
        ids = [m["messageId"] for m in fake_segment.messages]
        eu = sum(i.startswith("sprig_api_eu-") for i in ids)
        return len(ids) - eu, eu

    wait_until(lambda: per_source()[0] > 0 and per_source()[0] == per_source()[1])  # each source, every row
    polled = daemon.admin_get("/status").json()["sources"]["sprig_api_eu"]
    assert polled["paused"] is None and polled["last_poll"] > 0 and polled["cursor"]  # as the console shows it
    text = daemon.admin_get("/metrics").text  # a source's requests are labelled as a source's
    assert 'connector_source_request_seconds_count{source="sprig_api_eu"}' in text
    assert 'connector_sink_request_seconds_count{sink="sprig_api_eu"}' not in text
    assert daemon.stop() == 0  # both pollers cancelled, the daemon drained
