"""The Segment sink against the fake Segment: limits, retries, bisection, pause, the full path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import msgspec
import pytest

from connector.ids import canonical, message_id, record_id
from connector.testing import wait_until

CONFIG = """
[server]
port = {port}

[buffer]
path = "data/connector.db"

[sources.events]
type = "webhook"
path = "/in"

[sinks.segment]
type = "segment"
inputs = ["events"]
write_key = "${SEGMENT_WRITE_KEY}"
endpoint = "${SEGMENT_ENDPOINT}"
flush_interval = 0.05
retry_initial_seconds = 0.05
retry_max_seconds = 0.4
timeout = 1.0
"""


def env(fake) -> dict[str, str]:
    return {"SEGMENT_WRITE_KEY": "test-write-key", "SEGMENT_ENDPOINT": fake.url}


def track(i: int, **extra) -> dict:
    return {"type": "track", "userId": f"u{i}", "event": "Tested", "properties": {"i": i, **extra}}


def expected_id(message: dict) -> str:
    body = canonical(msgspec.json.decode(json.dumps(message).encode()))
    return message_id(record_id("events", body), "events", 0)


def post_all(daemon, messages: list[dict], per_request: int = 50) -> None:
    for start in range(0, len(messages), per_request):
        response = daemon.post("/in", json.dumps(messages[start:start + per_request]))
        assert response.status_code == 200, response.text


def test_batches_respect_segment_limits_and_oversized_messages_are_dead_lettered(local_daemon_factory, fake_segment):
    config = CONFIG.replace("flush_interval = 0.05", "flush_interval = 0.5\nbatch_max_messages = 2500")
    daemon = local_daemon_factory(config, env=env(fake_segment)).start()
    messages = [track(i, padding="x" * 900) for i in range(3000)]
    huge = track(99999, padding="y" * 40_000)
    post_all(daemon, messages[:1500])
    assert daemon.post("/in", json.dumps(huge)).status_code == 200
    post_all(daemon, messages[1500:])
    wanted = {expected_id(m) for m in messages}
    wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=30)
    assert fake_segment.violations == []
    assert expected_id(huge) not in fake_segment.message_ids()
    assert max(len(b["batch"]) for b in fake_segment.batches) > 100
    assert "Segment takes at most 32000 bytes a message" in wait_until(lambda: daemon.dead_letters())
    assert daemon.stop() == 0


def test_wire_format_auth_gzip_library_and_sent_at(local_daemon_factory, fake_segment):
    daemon = local_daemon_factory(CONFIG, env=env(fake_segment)).start()
    message = track(1)
    message["context"] = {"ip": "127.0.0.1"}
    daemon.post("/in", json.dumps(message))
    wait_until(lambda: fake_segment.messages)
    (sent,) = fake_segment.messages
    assert sent["messageId"] == expected_id(message) and len(sent["messageId"]) <= 100
    assert sent["context"]["library"]["name"] == "connector" and sent["context"]["ip"] == "127.0.0.1"
    assert fake_segment.batches[0]["sentAt"].endswith("Z")
    assert fake_segment.requests[0]["content-encoding"] == "gzip"
    assert fake_segment.requests[0]["content-type"] == "application/json"
    assert daemon.stop() == 0


def test_every_message_arrives_through_500_503_429_timeouts_and_refused_connections(local_daemon_factory, fake_segment):
    fake_segment.slow_seconds = 2.0
    fake_segment.script.extend([500, 503, (429, 1), "timeout", 502, 500, (429, 0.2), 503])
    daemon = local_daemon_factory(CONFIG, env=env(fake_segment)).start()
    messages = [track(i) for i in range(300)]
    post_all(daemon, messages[:150], per_request=10)
    fake_segment.stop()  # connections refused for a while
    post_all(daemon, messages[150:], per_request=10)
    wait_until(lambda: "connection error" in daemon.logs(), timeout=15)
    fake_segment.start()
    wanted = {expected_id(m) for m in messages}
    wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=60)
    assert fake_segment.message_ids() == wanted
    assert any("x-retry-count" in r for r in fake_segment.requests)
    assert daemon.dead_letters() == ""
    assert daemon.stop() == 0


def test_one_poisoned_message_is_dead_lettered_alone(local_daemon_factory, fake_segment):
    fake_segment.poison = "POISON"
    config = CONFIG.replace("flush_interval = 0.05", "flush_interval = 1.0")
    daemon = local_daemon_factory(config, env=env(fake_segment)).start()
    messages = [track(i) for i in range(64)]
    messages[37]["properties"]["note"] = "POISON"
    post_all(daemon, messages, per_request=64)
    good = {expected_id(m) for i, m in enumerate(messages) if i != 37}
    wait_until(lambda: fake_segment.message_ids() >= good, timeout=30)
    listing = wait_until(lambda: daemon.dead_letters())
    assert len(listing.splitlines()) == 1 and "Segment refused the message: HTTP 400" in listing
    assert expected_id(messages[37]) not in fake_segment.message_ids()
    assert daemon.stop() == 0


def test_401_pauses_the_sink_in_status_until_the_key_works_and_webhooks_are_still_taken(local_daemon_factory,
                                                                                          fake_segment):
    fake_segment.write_key = "the-real-key"
    daemon = local_daemon_factory(CONFIG, env=env(fake_segment)).start()
    daemon.post("/in", json.dumps([track(1), track(2)]))
    paused = wait_until(lambda: daemon.admin_get("/status").json()["sinks"].get("segment", {}).get("paused"))
    assert "HTTP 401" in paused and "write_key" in paused
    assert daemon.get("/readyz").status_code == 200  # the buffer stores: a balancer must keep sending webhooks
    assert daemon.post("/in", json.dumps([track(3)])).status_code == 200
    assert fake_segment.messages == []
    fake_segment.write_key = "test-write-key"  # the key is fixed on Segment's side
    wait_until(lambda: len(fake_segment.messages) == 3, timeout=15)
    wait_until(lambda: daemon.admin_get("/status").json()["sinks"]["segment"]["paused"] is None)
    assert daemon.logs().count("sink paused") == 1
    assert "test-write-key" not in daemon.logs()
    assert daemon.stop() == 0


JEBBIT = """
[server]
port = {port}

[sources.jebbit]
type = "jebbit"
shared_secret = "s3cret"

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[sinks.segment]
type = "segment"
inputs = ["jebbit_segment"]
write_key = "${SEGMENT_WRITE_KEY}"
endpoint = "${SEGMENT_ENDPOINT}"
flush_interval = 0.05
"""


def test_signed_jebbit_delivery_reaches_segment_as_identify_and_track(local_daemon_factory, fake_segment):
    from connector_jebbit.signature import sign

    daemon = local_daemon_factory(JEBBIT, env=env(fake_segment)).start()
    body = json.dumps([{"data": {"email": "a@example.com", "session_id": "s1", "campaign_id": "c1"}}]).encode()
    assert daemon.post("/webhooks/jebbit", body, {"x-jebbit-signature": sign("s3cret", body)}).status_code == 200
    assert daemon.post("/webhooks/jebbit", body, {"x-jebbit-signature": sign("s3cret", body)}).status_code == 200
    wait_until(lambda: len(fake_segment.messages) == 4)
    identify, track_message = fake_segment.messages[:2]
    assert identify["type"] == "identify" and track_message["event"] == "Survey Completed"
    assert fake_segment.messages[2]["messageId"] == identify["messageId"], "a sender's retry keeps its ids"
    assert len(fake_segment.message_ids()) == 2
    assert daemon.stop() == 0


@pytest.mark.parametrize("key,value,expected", [
    ("batch_max_messages", "3000", "sinks.segment.batch_max_messages: Expected `int` <= 2500"),
    ("batch_max_bytes", "600000", "sinks.segment.batch_max_bytes: Expected `int` <= 500000"),
    ("region", '"mars"', "c.toml:21: sinks.segment.region: Invalid enum value 'mars'"),
])
def test_settings_outside_segment_limits_are_config_errors(tmp_path, key, value, expected):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace("{port}", "1") + f"{key} = {value}\n")
    result = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(path)], capture_output=True,
                            text=True, env={"SEGMENT_WRITE_KEY": "k", "SEGMENT_ENDPOINT": "http://x", "PATH": ""})
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr


def test_max_retry_duration_dead_letters_after_it(local_daemon_factory, fake_segment):
    fake_segment.script.extend([503] * 1000)
    config = CONFIG + "max_retry_duration = 1.0\n"
    daemon = local_daemon_factory(config, env=env(fake_segment)).start()
    daemon.post("/in", json.dumps(track(1)))
    listing = wait_until(lambda: daemon.dead_letters(), timeout=20)
    assert "gave up after" in listing and "over 1.0 s: HTTP 503" in listing
    assert fake_segment.messages == []
    assert daemon.stop() == 0


@pytest.mark.parametrize("retry_after", ["0", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_retry_after_of_zero_or_in_the_past_uses_the_sinks_own_backoff(local_daemon_factory, fake_segment, retry_after):
    fake_segment.script.extend([(429, retry_after)] * 1000)
    daemon = local_daemon_factory(CONFIG, env=env(fake_segment)).start()
    post_all(daemon, [track(1)])
    wait_until(lambda: fake_segment.requests)
    started = time.monotonic()
    wait_until(lambda: len(fake_segment.requests) >= 6)
    # five backoffs drawn from up to 0.05, 0.1, 0.2, 0.4, 0.4 s: under 0.05 s in all about once in
    # 60,000 runs; immediate retries take a few milliseconds
    assert time.monotonic() - started > 0.05
    fake_segment.script.clear()
    wait_until(lambda: fake_segment.messages)
    assert daemon.stop() == 0


def test_a_message_segment_would_discard_is_dead_lettered_before_sending(local_daemon_factory, fake_segment):
    daemon = local_daemon_factory(CONFIG, env=env(fake_segment)).start()
    no_user = {"type": "track", "event": "Tested", "properties": {}}
    no_type = {"userId": "u1", "event": "Tested"}
    no_event = {"type": "track", "userId": "u2"}
    post_all(daemon, [no_user, no_type, no_event, track(3)])
    wait_until(lambda: fake_segment.messages)
    listing = wait_until(lambda: daemon.dead_letters().count("segment") >= 3 and daemon.dead_letters())
    assert "the track message has neither userId nor anonymousId" in listing
    assert "the message has no Segment type" in listing
    assert "the track message has no event" in listing
    assert [m["userId"] for m in fake_segment.messages] == ["u3"]
    assert fake_segment.violations == []
    assert daemon.stop() == 0


def test_check_warns_when_a_source_is_wired_straight_to_segment(tmp_path):
    path = tmp_path / "connector.toml"
    path.write_text(CONFIG.replace("{port}", "8080"))
    result = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(path)], capture_output=True,
                            text=True, env={**os.environ, "SEGMENT_WRITE_KEY": "k", "SEGMENT_ENDPOINT": "http://x"})
    assert result.returncode == 0, result.stderr
    assert "warning: sinks.segment reads source 'events' directly" in result.stdout
    assert "warning: sinks.segment.write_key is shorter than 16 characters" in result.stdout
