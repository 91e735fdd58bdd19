"""Metrics, status and tap on the running daemon."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

from connector.rates import RateHistory
from connector.testing import wait_until

CONFIG = """
[server]
port = {port}

[sources.events]
type = "webhook"
path = "/in"
bearer_token = "t"

[sinks.archive]
type = "file"
inputs = ["events"]
path = "out/events.ndjson"

[sinks.picky]
type = "picky"
inputs = ["events"]
path = "out/picky.ndjson"
refuse = "poison"
refuse_while = "connector.toml"
"""
AUTH = {"authorization": "Bearer t"}


def scrape(daemon) -> dict[str, float]:
    samples = {}
    for line in daemon.admin_get("/metrics").text.splitlines():
        match = re.match(r"^(connector_\w+)(\{[^}]*\})? ([-\d.e+]+)$", line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def test_metrics_count_what_was_received_delivered_and_rejected(daemon_factory, tmp_path, plugin_env):
    daemon = daemon_factory(CONFIG, env=plugin_env).start()
    for i in range(30):
        daemon.post("/in", json.dumps({"n": i, "kind": "poison" if i == 3 else "ok"}), AUTH)
    for _ in range(5):
        daemon.post("/in", "{}", {"authorization": "Bearer nope"})
    for _ in range(3):
        daemon.post("/in", "{", AUTH)
    wait_until(lambda: scrape(daemon).get('connector_component_sent_events_total{component="picky"}') == 29)
    wait_until(lambda: scrape(daemon).get('connector_buffer_records{sink="archive"}') == 0)
    m = scrape(daemon)
    assert m['connector_http_requests_total{source="events",status="200"}'] == 30
    assert m['connector_http_requests_total{source="events",status="401"}'] == 5
    assert m['connector_http_requests_total{source="events",status="400"}'] == 3
    assert m['connector_component_received_events_total{component="events"}'] == 30
    assert m['connector_component_sent_events_total{component="archive"}'] == 30
    assert m['connector_dead_letters_total{reason="refused_contains_poison",sink="picky"}'] == 1
    assert m["connector_ack_seconds_count"] == 30
    assert m["connector_buffer_bytes"] >= 0

    status = daemon.admin_get("/status").json()
    assert status["sinks"]["picky"]["dead_letters"] == 1
    assert status["sinks"]["picky"]["last_error"] == "refused: contains poison"
    printed = subprocess.run([sys.executable, "-m", "connector", "status", "-c", str(daemon.config_path)],
                             capture_output=True, text=True, env=daemon.env)
    assert printed.returncode == 0, printed.stderr
    assert "daemon: running" in printed.stdout
    assert re.search(r"picky\s+0\s+29\s+1\s+ok\s+\S+ refused: contains poison", printed.stdout), printed.stdout
    assert status["sources"]["events"]["received"] == 30
    assert status["sources"]["events"]["last_refused"]["status"] == 400  # the last of the refused requests
    refusals = status["sources"]["events"]["refusals"]
    assert [r["status"] for r in refusals] == [401] * 5 + [400] * 3 and {r["client"] for r in refusals} == {"127.0.0.1"}
    assert m['connector_refused_deliveries_total{source="events",status="401"}'] == 5
    assert re.search(r"events\s+30\s+-\s+\S+ 400 from 127.0.0.1: malformed JSON: .* \(8 recent\)", printed.stdout), \
        printed.stdout
    assert daemon.stop() == 0

    stopped = subprocess.run([sys.executable, "-m", "connector", "status", "-c", str(daemon.config_path)],
                             capture_output=True, text=True, env=daemon.env)
    assert "daemon: not running" in stopped.stdout
    assert re.search(r"archive\s+0\s+-\s+0\s+ok", stopped.stdout), stopped.stdout


def test_tap_shows_messages_while_the_file_sink_gets_them_all(daemon_factory, tmp_path):
    config = CONFIG.split("[sinks.picky]")[0]
    daemon = daemon_factory(config).start()  # the tap may start before the delivery process listens
    tap = subprocess.Popen([sys.executable, "-m", "connector", "tap", "-c", str(daemon.config_path),
                            "--component", "archive"], stdout=subprocess.PIPE, text=True)
    seen: list[dict] = []
    reader = threading.Thread(target=lambda: seen.extend(json.loads(line) for line in tap.stdout), daemon=True)
    reader.start()
    try:
        warm = 0
        while not seen:  # wait until the tap is connected
            daemon.post("/in", json.dumps({"warm": warm}), AUTH)
            warm += 1
            time.sleep(0.1)
            assert warm < 100
        for i in range(100):
            daemon.post("/in", json.dumps({"n": i}), AUTH)
        wait_until(lambda: {e["data"].get("n") for e in seen} >= set(range(100)))
        assert all(e["component"] == "archive" and e["id"].startswith("events-") for e in seen)
        out = tmp_path / "out" / "events.ndjson"
        wait_until(lambda: len(out.read_text().splitlines()) == warm + 100)
        assert daemon.stop() == 0
        assert tap.wait(10) == 0, "the tap ends when the daemon stops"
    finally:
        if tap.poll() is None:
            tap.kill()
            tap.wait()
        reader.join(5)
        tap.stdout.close()


def test_the_per_request_metrics_read_as_prometheus_client_would_write_them():
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from connector.metrics import LoopCounter, LoopHistogram

    ours, theirs = CollectorRegistry(), CollectorRegistry()
    buckets = (0.001, 0.01, 1)
    histogram = LoopHistogram("t_seconds", "Doc.", buckets, registry=ours)
    reference = Histogram("t_seconds", "Doc.", buckets=buckets, registry=theirs)
    counter = LoopCounter("t_events", "Doc.", ["source", "status"], registry=ours)
    reference_counter = Counter("t_events", "Doc.", ["source", "status"], registry=theirs)
    for value in (0.0005, 0.001, 0.0011, 0.01, 0.5, 1, 7):  # the bounds themselves count in their bucket
        histogram.observe(value)
        reference.observe(value)
    counter.labels("jebbit", "200").inc()
    counter.labels("jebbit", "200").inc(2)
    counter.labels("sprig", "401").inc()
    reference_counter.labels("jebbit", "200").inc(3)
    reference_counter.labels("sprig", "401").inc()
    created = [line for line in generate_latest(theirs).decode().splitlines() if "_created" not in line]
    assert generate_latest(ours).decode().splitlines() == created


def test_the_rate_history_turns_totals_into_rates_per_second_and_survives_a_reset():
    history = RateHistory(every=5, keep=3)

    def sample(at: float, jebbit: float, sinks: dict[str, float]) -> None:
        history.sample({"sources": {"jebbit": jebbit}, "sinks": sinks}, at=at, clock=at - 90)

    sample(100, 0, {"segment": 0})
    assert history.view() == {"every_seconds": 5, "times": [], "sources": {}, "sinks": {}}
    sample(105, 50, {"segment": 100})
    sample(110, 50, {"segment": 10, "archive": 20})  # a restart: 10 new; a new sink starts at once
    sample(115, 60, {"segment": 8, "archive": 20})  # a stale reading, a little lower: 0, not a restart
    sample(120, 70, {"segment": 28, "archive": 30})
    view = history.view()
    assert view["times"] == [110, 115, 120]  # the last three kept
    assert view["sources"] == {"jebbit": [0.0, 2.0, 2.0]}
    assert view["sinks"] == {"segment": [2.0, 0.0, 4.0], "archive": [4.0, 0.0, 2.0]}


def test_a_polling_source_s_reasons_shown_in_status_mask_the_secrets():
    """A poller's error or pause reason (a crash's message may quote its request) is masked as the
    log is, before ``/status`` shows it."""
    from connector import logging as connector_logging
    from connector.buffer.memory import MemoryBuffer
    from connector.ingress.intake import Intake, PollingContext
    from connector.tap import TapHub

    secret = "poller-api-key-0123456789"
    connector_logging.configure("error", [secret])
    try:
        intake = Intake(MemoryBuffer(10), TapHub())
        context = PollingContext("poller", intake)
        context.error(f"crashed: HTTPStatusError: 500 for https://api.example/items?key={secret}")
        assert intake.polls["poller"].error == "crashed: HTTPStatusError: 500 for https://api.example/items?key=***"
        context.pause(f"refused {secret}")
        assert intake.paused["poller"] == "refused ***" and secret not in repr(intake.polls)
    finally:
        connector_logging.configure("info")
