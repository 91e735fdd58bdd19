"""The real daemon as a subprocess: ingress answers, delivery to the file sink, stop and crash."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from connector.testing import wait_until

CONFIG = """
[service]
shutdown_grace_seconds = 10

[server]
port = {port}
max_body_bytes = 2048

[buffer]
type = "{buffer}"

[sources.events]
type = "webhook"
path = "/in"
bearer_token = "${TOKEN}"

[sinks.archive]
type = "file"
inputs = ["events"]
path = "out/events.ndjson"
"""
AUTH = {"authorization": "Bearer t0ken-value"}
ENV = {"TOKEN": "t0ken-value"}


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("buffer", ["sqlite", "memory"])
def test_posted_records_reach_the_file_and_sigterm_exits_0(daemon_factory, tmp_path, buffer):
    daemon = daemon_factory(CONFIG.replace("{buffer}", buffer), env=ENV).start()
    for i in range(50):
        response = daemon.post("/in", json.dumps([{"n": i, "k": "a"}, {"n": i, "k": "b"}]), AUTH)
        assert response.status_code == 200
        assert response.json() == {"accepted": 2}
    out = tmp_path / "out" / "events.ndjson"
    assert daemon.stop(signal.SIGTERM) == 0
    got = lines(out)
    assert sorted((r["n"], r["k"]) for r in got) == sorted((i, k) for i in range(50) for k in "ab")


def test_ingress_answers_each_bad_request_with_a_json_reason(local_daemon_factory):
    daemon = local_daemon_factory(CONFIG.replace("{buffer}", "memory"), env=ENV).start()
    cases = [
        (httpx.post(daemon.base_url + "/nope", content=b"{}"), 404, "not found"),
        (httpx.get(daemon.base_url + "/in"), 405, "method not allowed"),
        (daemon.post("/in", b"x" * 4096, AUTH), 413, "payload too large"),
        (httpx.post(daemon.base_url + "/in", content=b"{}", headers={"content-type": "text/plain", **AUTH}),
         415, "unsupported media type"),
        (daemon.post("/in", b"{}", {"authorization": "Bearer wrong"}), 401, "unauthorized"),
        (daemon.post("/in", b"{}"), 401, "unauthorized"),
        (daemon.post("/in", b'{"a": ', AUTH), 400, "malformed JSON"),
    ]
    for response, status, error in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"] == error
        assert response.json()["detail"]
    assert httpx.get(daemon.base_url + "/healthz").status_code == 200
    assert httpx.get(daemon.base_url + "/readyz").json() == {"status": "ready"}
    assert daemon.stop() == 0


def test_streamed_body_over_the_limit_is_413_without_reading_it_all(local_daemon_factory):
    daemon = local_daemon_factory(CONFIG.replace("{buffer}", "memory"), env=ENV).start()

    def chunks():
        for _ in range(1000):
            yield b"x" * 1024

    response = httpx.post(daemon.base_url + "/in", content=chunks(),
                          headers={"content-type": "application/json", **AUTH})
    assert response.status_code == 413
    assert daemon.post("/in", b'{"ok": true}', AUTH).status_code == 200
    assert daemon.stop() == 0


@pytest.mark.parametrize("buffer", ["sqlite", "memory"])
def test_a_failing_sink_pauses_alone_and_starts_over_holding_its_records(daemon_factory, plugin_env, tmp_path,
                                                                          buffer):
    config = CONFIG.replace("{buffer}", buffer) + """
[sinks.broken]
type = "crashing"
inputs = ["events"]
path = "out/broken.ndjson"
crash_while = "crashing"
"""
    (tmp_path / "crashing").touch()
    daemon = daemon_factory(config, env={**ENV, **plugin_env}).start()
    daemon.admin_token = None
    for i in range(30):
        assert daemon.post("/in", json.dumps({"n": i}).encode(), AUTH).status_code == 200
    wait_until(lambda: len(lines(tmp_path / "out" / "events.ndjson")) == 30)  # the other sink goes on
    paused = wait_until(lambda: daemon.admin_get("/status").json()["sinks"].get("broken", {}).get("paused"))
    assert "the sink failed: RuntimeError('boom: the crashing sink crashed')" in paused
    assert daemon.post("/in", b'{"n": 30}', AUTH).status_code == 200  # and so does the ingress
    assert daemon.get("/readyz").status_code == 200
    (tmp_path / "crashing").unlink()  # the cause is fixed: it starts over by itself, with every record
    wait_until(lambda: {line["n"] for line in lines(tmp_path / "out" / "broken.ndjson")} == set(range(31)),
               timeout=30)
    wait_until(lambda: daemon.admin_get("/status").json()["sinks"]["broken"]["paused"] is None)
    assert daemon.process.poll() is None
    assert daemon.stop() == 0
    assert "sink failed; it holds its records and starts over" in daemon.logs() and "Traceback" in daemon.logs()


def test_a_crashing_polling_source_starts_again_from_its_checkpoint_and_the_daemon_runs_on(daemon_factory, plugin_env,
                                                                                         tmp_path):
    config = CONFIG.replace("{buffer}", "sqlite") + """
[sources.counter]
type = "counting_poller"
crash_while = "crashing"

[sinks.counted]
type = "file"
inputs = ["counter"]
path = "out/counted.ndjson"
"""
    daemon = daemon_factory(config, env={**ENV, **plugin_env}).start()
    daemon.admin_token = None
    wait_until(lambda: len(lines(tmp_path / "out" / "counted.ndjson")) >= 5)
    (tmp_path / "crashing").touch()
    status = wait_until(lambda: (s := daemon.admin_get("/status").json()["sources"]["counter"])["last_outcome"]
                        .get("error") and s)
    assert status["last_outcome"]["error"].startswith("crashed: RuntimeError: boom: the poller crashed at ")
    assert daemon.post("/in", b'{"n": "webhook"}', AUTH).status_code == 200  # the rest of the daemon runs on
    assert daemon.get("/readyz").status_code == 200
    (tmp_path / "crashing").unlink()
    wait_until(lambda: daemon.admin_get("/status").json()["sources"]["counter"]["last_outcome"].get("stored") == 1,
               timeout=10)
    count = len(lines(tmp_path / "out" / "counted.ndjson"))
    wait_until(lambda: len(lines(tmp_path / "out" / "counted.ndjson")) >= count + 5)
    metrics = daemon.admin_get("/metrics").text
    assert daemon.stop() == 0
    numbers = [line["n"] for line in lines(tmp_path / "out" / "counted.ndjson")]
    assert numbers == list(range(len(numbers))), "resumed at its checkpoint: nothing skipped or stored twice"
    assert "polling source crashed; it starts again from its last checkpoint" in daemon.logs()
    assert "Traceback" in daemon.logs()
    assert re.search(r'connector_source_errors_total\{source="counter"\} [1-9]', metrics)


@pytest.mark.parametrize("buffer", ["sqlite", "memory"])
def test_a_taken_port_is_one_line_before_anything_starts(daemon_factory, tmp_path, buffer):
    config = CONFIG.replace("{buffer}", buffer).replace("[service]", "[service]\ndelivery_process = " +
                                                          ("true" if buffer == "sqlite" else "false"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = daemon_factory(config.replace("{port}", str(port)), env=ENV)
        with pytest.raises(RuntimeError, match="exited with 1"):
            daemon.start()
    assert daemon.logs() == (f"connector: error: cannot listen on 127.0.0.1:{port}: Address already in use "
                             "(another program listens there: stop it, or set [server] port)\n")


def test_secrets_never_reach_the_logs(local_daemon_factory):
    config = CONFIG.replace("{buffer}", "memory").replace('[service]', '[service]\nlog_level = "debug"')
    daemon = local_daemon_factory(config, env=ENV).start()
    daemon.post("/in", b"{}", {"authorization": "Bearer t0ken-value"})
    daemon.post("/in", b"{}", {"authorization": "Bearer nope"})
    assert daemon.stop() == 0
    wait_until(lambda: "stopped" in daemon.logs())
    assert "t0ken-value" not in daemon.logs()


def test_hmac_signed_webhook_and_stdout_sink(daemon_factory):
    import hashlib
    import hmac

    config = """
[server]
port = {port}

[buffer]
type = "memory"

[sources.signed]
type = "webhook"
path = "/signed"
hmac_secret = "k3y"
hmac_header = "x-hub-signature-256"

[sinks.console]
type = "stdout"
inputs = ["signed"]
"""
    daemon = daemon_factory(config).start()
    body = b'{"hello": "world"}'
    good = "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert daemon.post("/signed", body, {"x-hub-signature-256": good}).status_code == 200
    assert daemon.post("/signed", body, {"x-hub-signature-256": "sha256=" + "0" * 64}).status_code == 401
    assert daemon.post("/signed", body + b" ", {"x-hub-signature-256": good}).status_code == 401
    wait_until(lambda: '{"hello":"world"}' in daemon.stdout())
    assert daemon.stop() == 0
    assert daemon.stdout().splitlines() == ['{"hello":"world"}']


def test_a_full_buffer_answers_503_with_retry_after_and_keeps_what_it_stored(local_daemon_factory, tmp_path):
    config = CONFIG.replace("shutdown_grace_seconds = 10", "shutdown_grace_seconds = 1").replace(
        'type = "{buffer}"', 'type = "sqlite"\nmax_bytes = 600').replace(
        'path = "out/events.ndjson"', 'path = "out/events.ndjson"\n\n[sinks.never]\ntype = "segment"\n'
        'inputs = ["events"]\nwrite_key = "k"\nendpoint = "http://127.0.0.1:9"\n')
    daemon = local_daemon_factory(config, env=ENV).start()
    # Segment messages: the "never" sink retries them (its endpoint is down) and so holds every record
    track = {"type": "track", "userId": "u1", "event": "Filled"}
    statuses = [daemon.post("/in", json.dumps({**track, "n": i, "pad": "x" * 50}), AUTH) for i in range(20)]
    accepted = [i for i, r in enumerate(statuses) if r.status_code == 200]
    full = [r for r in statuses if r.status_code == 503]
    assert accepted and full
    assert full[0].headers["retry-after"] and full[0].json()["error"] == "buffer full"
    out = tmp_path / "out" / "events.ndjson"
    wait_until(lambda: len(lines(out)) == len(accepted))
    assert sorted(r["n"] for r in lines(out)) == accepted
    assert daemon.stop() == 0


def test_the_file_sink_writes_a_private_file_and_opens_a_new_one_when_it_is_moved_away(daemon_factory, tmp_path):
    daemon = daemon_factory(CONFIG.replace("{buffer}", "memory"), env=ENV).start()
    archive = tmp_path / "out" / "events.ndjson"
    for i in range(10):
        assert daemon.post("/in", json.dumps({"n": i}).encode(), AUTH).status_code == 200
    wait_until(lambda: len(lines(archive)) == 10)
    assert archive.stat().st_mode & 0o777 == 0o600  # records carry emails
    rotated = archive.with_suffix(".ndjson.1")
    archive.rename(rotated)  # as logrotate does, then its postrotate: systemctl reload
    daemon.process.send_signal(signal.SIGHUP)
    for i in range(10, 20):
        assert daemon.post("/in", json.dumps({"n": i}).encode(), AUTH).status_code == 200
    wait_until(lambda: len(lines(archive)) == 10)
    assert [line["n"] for line in lines(rotated) + lines(archive)] == list(range(20))  # none lost or doubled
    assert daemon.stop() == 0


def test_a_file_mode_that_is_not_octal_is_refused_naming_the_key(tmp_path):
    path = tmp_path / "connector.toml"
    path.write_text(CONFIG.replace("{buffer}", "memory").replace("{port}", "8080") + 'mode = "rw-r--r--"\n')
    done = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(path)], capture_output=True, text=True,
                          env={**os.environ, **ENV}, timeout=30)
    assert done.returncode == 1 and "sinks.archive.mode: 'rw-r--r--' is not an octal file mode" in done.stderr


def test_what_the_daemon_stores_is_readable_by_its_user_only(daemon_factory, tmp_path):
    config = CONFIG.replace('type = "{buffer}"', 'type = "sqlite"\npath = "data/connector.db"')
    daemon = daemon_factory(config, env=ENV).start()
    assert daemon.post("/in", b'{"email": "ada@example.com"}', AUTH).status_code == 200
    wait_until(lambda: len(lines(tmp_path / "out" / "events.ndjson")) == 1)
    data = tmp_path / "data"
    made = [data, *data.iterdir(), tmp_path / "out" / "events.ndjson"]
    modes = {path.name: path.stat().st_mode & 0o777 for path in made}
    assert modes == {"data": 0o700, "connector.db": 0o600, "connector.db-wal": 0o600, "connector.db-shm": 0o600,
                     "connector.db.lock": 0o600, "events.ndjson": 0o600}, modes
    assert daemon.stop() == 0
    (data / "connector.db").chmod(0o644)  # made by hand, or by an older version
    daemon.start()
    assert daemon.stop() == 0
    assert "the buffer's records are readable by others" in daemon.logs() and "chmod 600" in daemon.logs()
    assert (data / "connector.db").stat().st_mode & 0o777 == 0o644  # reported, not changed


def test_sighup_never_stops_the_daemon_and_reaches_its_delivery_process(daemon_factory, tmp_path):
    config = CONFIG.replace('type = "{buffer}"', 'type = "sqlite"').replace("[service]",
                                                                          "[service]\ndelivery_process = true")
    daemon = daemon_factory(config, env=ENV).start()
    (delivery,) = wait_until(lambda: daemon.children())
    wait_until(lambda: '"process": "delivery"' in daemon.logs() and daemon.admin_get("/status").json()["sinks"])
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: daemon.logs().count('"event": "reloaded"') == 2)  # both processes
    assert daemon.post("/in", b'{"after": "hup"}', AUTH).status_code == 200
    wait_until(lambda: lines(tmp_path / "out" / "events.ndjson") == [{"after": "hup"}])
    assert daemon.process.poll() is None and daemon.children() == [delivery]
    assert daemon.stop() == 0
