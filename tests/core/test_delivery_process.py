"""``delivery_process = true``: sinks in a second process, supervised by the main one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from connector.testing import wait_until
from connector_jebbit.signature import sign

CONFIG = """
[service]
delivery_process = true
shutdown_grace_seconds = 5

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
retry_initial_seconds = 0.05
retry_max_seconds = 0.5
"""


def post(daemon, n: int):
    body = json.dumps([{"data": {"email": f"u{n}@example.com", "session_id": str(n)}}]).encode()
    return daemon.post("/webhooks/jebbit", body, {"x-jebbit-signature": sign("s3cret", body)})


def test_sinks_run_in_a_second_process_with_readiness_status_and_metrics(daemon_factory, fake_segment):
    fake_segment.write_key = "not-yet"
    env = {"SEGMENT_WRITE_KEY": "test-write-key", "SEGMENT_ENDPOINT": fake_segment.url}
    daemon = daemon_factory(CONFIG, env=env).start()
    (delivery,) = wait_until(lambda: daemon.children())
    started = time.time()
    for n in range(50):
        assert post(daemon, n).status_code == 200
    # Segment refuses: the child's sink pauses (its state shows once the child has published it)
    paused = wait_until(lambda: daemon.admin_get("/status").json()["sinks"].get("segment", {}).get("paused"))
    assert "write_key" in paused
    status = wait_until(lambda: (now := daemon.admin_get("/status").json())["sinks"]["segment"]["oldest_pending_at"]
                        and now)  # what the console shows: the age of the oldest waiting record
    assert status["sinks"]["segment"]["lag"] > 0 and started <= status["sinks"]["segment"]["oldest_pending_at"]
    assert status["graph"]["sinks"]["segment"] == {"type": "segment", "inputs": ["jebbit_segment"]}
    assert status["graph"]["sources"]["jebbit"] == {"type": "jebbit", "inputs": []}
    assert status["buffer"]["max_bytes"] == 1 << 30 and status["buffer"]["free_disk_bytes"] > 0
    assert daemon.get("/readyz").status_code == 200  # webhooks are still stored: a balancer keeps sending them
    fake_segment.write_key = "test-write-key"
    wait_until(lambda: len(fake_segment.message_ids()) == 100, timeout=20)
    wait_until(lambda: daemon.admin_get("/status").json()["sinks"]["segment"]["paused"] is None)
    wait_until(lambda: daemon.admin_get("/status").json()["sinks"]["segment"]["delivered"] == 100)
    assert daemon.admin_get("/status").json()["sinks"]["segment"]["oldest_pending_at"] is None
    assert 'connector_component_sent_events_total{component="segment"} 100.0' in daemon.admin_get("/metrics").text
    assert daemon.stop() == 0
    assert not Path(f"/proc/{delivery}").exists(), "the delivery process stops with the daemon"


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_a_crashed_delivery_process_stops_the_daemon(daemon_factory, fake_segment):
    env = {"SEGMENT_WRITE_KEY": "test-write-key", "SEGMENT_ENDPOINT": fake_segment.url}
    daemon = daemon_factory(CONFIG, env=env).start()
    (delivery,) = wait_until(lambda: daemon.children())
    os.kill(delivery, signal.SIGKILL)
    assert daemon.wait(timeout=15) == 1
    assert "the delivery process exited with -9" in daemon.logs()


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_a_full_buffer_recovers_when_the_delivery_process_frees_space(daemon_factory, fake_segment):
    fake_segment.stop()
    config = CONFIG.replace("[sources.jebbit]", '[buffer]\nmax_bytes = 8000\n\n[sources.jebbit]')
    daemon = daemon_factory(config, env={"SEGMENT_WRITE_KEY": "test-write-key",
                                         "SEGMENT_ENDPOINT": fake_segment.url}).start()
    statuses: list[int] = []
    while 503 not in statuses and len(statuses) < 300:
        statuses.append(post(daemon, len(statuses)).status_code)
    assert 503 in statuses, "the buffer must fill while Segment is down"
    fake_segment.start()  # the delivery process delivers and deletes; the main process sees it
    wait_until(lambda: post(daemon, 1000 + len(statuses)).status_code == 200, timeout=30, interval=0.2)
    assert daemon.stop() == 0


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_the_delivery_process_stops_when_the_main_process_is_killed(daemon_factory, fake_segment):
    env = {"SEGMENT_WRITE_KEY": "test-write-key", "SEGMENT_ENDPOINT": fake_segment.url}
    daemon = daemon_factory(CONFIG, env=env).start()
    (delivery,) = wait_until(lambda: daemon.children())
    argv = Path(f"/proc/{delivery}/cmdline").read_text().split("\0")
    socket_dir = Path(argv[argv.index("--control-socket") + 1]).parent
    assert socket_dir.is_dir()
    daemon.process.kill()
    daemon.process.wait()
    wait_until(lambda: not Path(f"/proc/{delivery}").exists() or " Z " in Path(f"/proc/{delivery}/stat").read_text(),
               timeout=15)
    assert not socket_dir.exists(), "the delivery process removes its control socket's directory"


def test_by_default_sinks_run_in_a_second_process_on_two_cores_or_more(daemon_factory, fake_segment):
    env = {"SEGMENT_WRITE_KEY": "test-write-key", "SEGMENT_ENDPOINT": fake_segment.url}
    default = CONFIG.replace("delivery_process = true\n", "")
    daemon = daemon_factory(default, env=env).start()
    expected = 1 if len(os.sched_getaffinity(0)) >= 2 else 0
    wait_until(lambda: len(daemon.children()) == expected)
    assert daemon.stop() == 0
    daemon = daemon_factory(CONFIG.replace("delivery_process = true", "delivery_process = false"), env=env).start()
    assert post(daemon, 1).status_code == 200
    wait_until(lambda: len(fake_segment.message_ids()) == 2)
    assert daemon.children() == []
    assert daemon.stop() == 0


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_sigterm_to_both_processes_as_systemd_sends_it_is_a_clean_stop(daemon_factory, fake_segment):
    env = {"SEGMENT_WRITE_KEY": "test-write-key", "SEGMENT_ENDPOINT": fake_segment.url}
    daemon = daemon_factory(CONFIG, env=env).start()
    (delivery,) = wait_until(lambda: daemon.children())
    for n in range(20):
        assert post(daemon, n).status_code == 200
    os.kill(delivery, signal.SIGTERM)
    assert daemon.stop() == 0, daemon.logs()
    daemon = daemon_factory(CONFIG, env=env).start()
    wait_until(lambda: len(fake_segment.message_ids()) == 40)
    (delivery,) = wait_until(lambda: daemon.children())
    os.kill(delivery, signal.SIGTERM)  # alone: the daemon stops too, cleanly
    assert daemon.wait(timeout=15) == 0, daemon.logs()


def test_a_tap_started_before_the_delivery_process_listens_gets_its_lines(daemon_factory, fake_segment):
    env = {"SEGMENT_WRITE_KEY": "test-write-key", "SEGMENT_ENDPOINT": fake_segment.url}
    daemon = daemon_factory(CONFIG, env=env).start()
    (delivery,) = wait_until(lambda: daemon.children())
    os.kill(delivery, signal.SIGSTOP)  # (usually before it has bound its control socket)
    tap = subprocess.Popen([sys.executable, "-m", "connector", "tap", "-c", str(daemon.config_path),
                            "--component", "jebbit_segment"], stdout=subprocess.PIPE, text=True, env=daemon.env)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(tap.stdout), daemon=True)
    reader.start()
    try:
        time.sleep(1.5)
        os.kill(delivery, signal.SIGCONT)
        n = 0
        while len(seen) < 2:
            assert post(daemon, n).status_code == 200
            n += 1
            time.sleep(0.1)
            assert n < 100, "the tap never got the mapper's messages"
        assert all(json.loads(line)["component"] == "jebbit_segment" for line in seen)
        assert daemon.stop() == 0
    finally:
        if Path(f"/proc/{delivery}").exists():
            os.kill(delivery, signal.SIGCONT)
        if tap.poll() is None:
            tap.kill()
        tap.wait()
        reader.join(5)
        tap.stdout.close()


def test_a_second_daemon_on_the_same_buffer_exits_1_naming_the_first(daemon_factory, fake_segment, tmp_path):
    env = {"SEGMENT_WRITE_KEY": fake_segment.write_key, "SEGMENT_ENDPOINT": fake_segment.url}
    first = daemon_factory(CONFIG, env=env).start()
    second = daemon_factory(CONFIG, env=env, directory=tmp_path)  # the same data directory
    with pytest.raises(RuntimeError, match="exited with 1"):
        second.start()
    assert (f"connector: error: {tmp_path / 'data' / 'connector.db'}: the buffer is in use by the daemon with pid "
            f"{first.process.pid}; one daemon owns a buffer (stop that one, or share work through the nats buffer)\n"
            ) in second.logs()  # the two share the directory, so the log file too
    assert post(first, 1).status_code == 200
    wait_until(lambda: len(fake_segment.messages) == 2)
    assert first.stop() == 0
    third = daemon_factory(CONFIG, env=env, directory=tmp_path).start()  # the lock went with the process
    assert third.stop() == 0


def test_every_log_line_says_which_process_wrote_it(daemon_factory, fake_segment):
    env = {"SEGMENT_WRITE_KEY": fake_segment.write_key, "SEGMENT_ENDPOINT": fake_segment.url}
    daemon = daemon_factory(CONFIG, env=env).start()
    [child] = wait_until(daemon.children)
    wait_until(lambda: daemon.logs().count('"event": "starting"') == 2)
    assert daemon.stop() == 0
    lines = [json.loads(line) for line in daemon.logs().splitlines()]
    assert lines and all({"process", "pid"} <= set(line) for line in lines)
    starting = {(line["process"], line["pid"]) for line in lines if line["event"] == "starting"}
    assert starting == {("ingest", daemon.process.pid), ("delivery", child)}
