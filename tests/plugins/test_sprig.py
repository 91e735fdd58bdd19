"""Sprig: webhooks to the running daemon, the Segment track field by field, the export poller."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from connector.testing import wait_until
from support.fake_sprig import FakeSprigAPI

SECRET = "sprig-api-secret"
WEBHOOK = """
[server]
port = {port}

[sources.sprig]
type = "sprig"
api_secret = "${SPRIG_WEBHOOK_SECRET}"
events = ["study seen"]

[mappers.sprig_segment]
type = "sprig_to_segment"
inputs = ["sprig"]

[sinks.archive]
type = "file"
inputs = ["sprig_segment"]
path = "out/messages.ndjson"
"""
AUTH = {"authorization": f"Bearer {SECRET}"}


def answer(i: int = 1, **overrides) -> dict:
    """An "answer submitted" webhook body with every field Sprig documents."""
    return {
        "id": 1000 + i, "environmentId": "env-prod-1", "createdAt": "2026-11-20T10:00:00.000Z",
        "responseGroupUid": f"rg-{i}", "response": "Very satisfied", "surveyId": 4242,
        "surveyName": "Onboarding NPS", "question": "How satisfied are you?", "questionType": "likert",
        "visitorId": f"visitor-{i}", "userId": f"user-{i}", "email": f"user{i}@example.com",
        "attributes": {"plan": "pro", "role": "admin"}, "triggeringEvent": "checkout_completed",
        **overrides,
    }


def messages(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def daemon(daemon_factory, plugin_env):
    return daemon_factory(WEBHOOK, env={"SPRIG_WEBHOOK_SECRET": SECRET, **plugin_env}).start()


def test_answer_submitted_becomes_the_sprig_streams_track(daemon, tmp_path):
    assert daemon.post("/webhooks/sprig", json.dumps(answer()), AUTH).json() == {"accepted": 1}
    out = tmp_path / "out" / "messages.ndjson"
    (track,) = wait_until(lambda: messages(out))
    assert track == {
        "type": "track",
        "event": "SDK - Submitted - Survey Response",
        "userId": "user-1",
        "properties": {
            "surveyName": "Onboarding NPS", "surveyId": 4242, "createdAt": "2026-11-20T10:00:00.000Z",
            "question": "How satisfied are you?", "questionType": "likert", "visitorId": "visitor-1",
            "responseGroupId": "rg-1", "response": "Very satisfied", "email": "user1@example.com",
            "attributes": {"plan": "pro", "role": "admin"}, "triggeringEvent": "checkout_completed",
        },
        "context": {"integration": {"name": "sprig"}},
    }
    assert daemon.stop() == 0


def test_wrong_or_missing_bearer_gets_401_and_nothing_is_stored(daemon, tmp_path):
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": SECRET}):
        response = daemon.post("/webhooks/sprig", json.dumps(answer(2)), headers)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
        assert SECRET not in response.text
    daemon.post("/webhooks/sprig", json.dumps(answer(3)), AUTH)
    out = tmp_path / "out" / "messages.ndjson"
    wait_until(lambda: messages(out))
    assert daemon.stop() == 0
    assert [m["userId"] for m in messages(out)] == ["user-3"]


def test_test_event_and_unlisted_event_types_are_acknowledged_not_forwarded(daemon, tmp_path):
    test_event = {"id": 1, "environmentId": "abc123", "surveyId": 1, "surveyName": "TEST_SURVEY", "eventType": "TEST"}
    response = daemon.post("/webhooks/sprig", json.dumps(test_event), AUTH)
    assert response.status_code == 200 and response.json()["forwarded"] is False
    assert daemon.post("/webhooks/sprig", json.dumps(answer(4, eventType="study sent")), AUTH).json() == {"accepted": 0}
    assert daemon.post("/webhooks/sprig", json.dumps(answer(5, eventType="STUDY_SEEN")), AUTH).json() == {"accepted": 1}
    assert daemon.post("/webhooks/sprig", json.dumps(answer(6, eventType="answer.submitted")), AUTH).json() == {"accepted": 1}
    out = tmp_path / "out" / "messages.ndjson"
    wait_until(lambda: len(messages(out)) == 2)
    assert daemon.stop() == 0
    assert sorted(m["userId"] for m in messages(out)) == ["user-5", "user-6"]


def test_anonymous_responses_are_dead_lettered_with_the_reason(daemon, tmp_path):
    daemon.post("/webhooks/sprig", json.dumps([answer(7, userId=None), answer(8)]), AUTH)
    wait_until(lambda: messages(tmp_path / "out" / "messages.ndjson"))

    def listing() -> str:
        return subprocess.run([sys.executable, "-m", "connector", "dlq", "list", "-c", str(daemon.config_path)],
                              capture_output=True, text=True, env=daemon.env).stdout

    assert "Segment needs a userId: the Sprig visitor is anonymous" in wait_until(listing)
    assert daemon.stop() == 0


def test_a_wrongly_typed_field_is_400_naming_it(daemon):
    response = daemon.post("/webhooks/sprig", json.dumps(answer(9, attributes="not an object")), AUTH)
    assert response.status_code == 400
    assert "$.attributes" in response.json()["detail"]
    assert daemon.stop() == 0


EXPORT = """
[server]
port = {port}

[sources.sprig_api]
type = "sprig_export"
api_key = "sprig-key"
base_url = "%s"
start = 1000
limit = 100
poll_interval = 0.2

[mappers.sprig_segment]
type = "sprig_to_segment"
inputs = ["sprig_api"]

[sinks.segment]
type = "segment"
inputs = ["sprig_segment"]
write_key = "k"
endpoint = "http://127.0.0.1:9"
"""


def stored(db) -> list[dict]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM records WHERE source = 'sprig_api'")]


def test_export_poller_survives_sigkill_without_skipping_or_repeating_a_page(daemon_factory, tmp_path):
    responses = [answer(i, createdAt=1000 + i) for i in range(2500)]
    api = FakeSprigAPI(responses).start()
    api.page_delay = 0.05
    api.script.extend([503, (429, 0.3)])
    try:
        config = EXPORT % api.url
        db = tmp_path / "data" / "connector.db"
        first = daemon_factory(config).start()
        wait_until(lambda: len(stored(db)) >= 1000, timeout=60)
        first.kill()
        killed_at = len(stored(db))
        assert killed_at < 2500, "the kill must land mid-way"
        daemon_factory(config).start()
        wait_until(lambda: len(stored(db)) >= 2500, timeout=60)
        time.sleep(1)  # further polls find nothing new
        rows = stored(db)
        keys = [(r["responseGroupUid"], r["question"]) for r in rows]
        assert len(keys) == 2500 and len(set(keys)) == 2500
        assert [s for *_, s in api.log[:2]] == [503, 429]
    finally:
        api.stop()
