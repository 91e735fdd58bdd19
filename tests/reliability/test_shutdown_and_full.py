"""SIGTERM while Segment is down; a full buffer answers 503 and recovers."""

from __future__ import annotations

import time

import pytest

from connector.testing import wait_until

from connector_jebbit.signature import sign

from .load import SECRET, Load, body, config, env, message_ids, report

pytestmark = pytest.mark.reliability


def test_sigterm_while_segment_is_down_exits_0_in_grace_and_restart_delivers(daemon_factory, fake_segment):
    fake_segment.stop()
    daemon = daemon_factory(config(grace=3), env=env(fake_segment.url)).start()
    load = Load(daemon.base_url + "/webhooks/jebbit", posters=16).start()
    wait_until(lambda: len(load.acknowledged) >= 500, timeout=60)
    load.stop()
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 3 + 2, "exit within the grace period"
    fake_segment.start()
    restarted = daemon_factory(config(), env=env(fake_segment.url)).start()
    wanted = message_ids(load.acknowledged)
    wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=60)
    assert restarted.stop() == 0
    report("shutdown while Segment down", load, fake_segment)


def test_full_buffer_answers_503_with_retry_after_and_recovers(daemon_factory, fake_segment):
    fake_segment.stop()
    daemon = daemon_factory(config(max_bytes=100_000), env=env(fake_segment.url)).start()
    load = Load(daemon.base_url + "/webhooks/jebbit", posters=4).start()
    wait_until(lambda: load.refused > 20, timeout=60)
    payload = body(999, 0)
    refused = daemon.post("/webhooks/jebbit", payload, {"x-jebbit-signature": sign(SECRET, payload)})
    assert refused.status_code == 503 and refused.json()["error"] == "buffer full"
    assert int(refused.headers["retry-after"]) > 0
    assert "buffer full" in daemon.logs()
    stuck_at = len(load.acknowledged)
    fake_segment.start()  # the sink drains, space frees up
    wait_until(lambda: len(load.acknowledged) > stuck_at + 100, timeout=60)
    load.stop()
    wanted = message_ids(load.acknowledged)
    wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=60)
    assert daemon.stop() == 0
    report("full buffer", load, fake_segment)


def test_an_idle_daemon_writes_next_to_nothing(daemon_factory, fake_segment):
    daemon = daemon_factory(config(), env=env(fake_segment.url)).start()
    payload = body(5, 0)
    assert daemon.post("/webhooks/jebbit", payload, {"x-jebbit-signature": sign(SECRET, payload)}).status_code == 200
    wait_until(lambda: len(fake_segment.message_ids()) == 2)
    time.sleep(2)  # the last cursor and sink state are written

    def written() -> int:
        total = 0
        for pid in [daemon.process.pid, *daemon.children()]:
            with open(f"/proc/{pid}/io") as io:
                total += next(int(line.split()[1]) for line in io if line.startswith("write_bytes:"))
        return total

    before = written()
    time.sleep(10)
    assert written() - before < 32 * 1024  # was ~240 KiB in 10 s: each sink's state, fsynced twice a second
    assert daemon.stop() == 0


def test_the_buffer_file_shrinks_after_a_backlog_drains(daemon_factory, fake_segment):
    import json

    import httpx

    fake_segment.fail(500)  # Segment is down: a backlog builds up
    daemon = daemon_factory(config(), env=env(fake_segment.url)).start()
    database = daemon.directory / "data" / "connector.db"

    def size() -> int:
        return sum(p.stat().st_size for p in database.parent.glob("connector.db*") if p.suffix != ".lock")

    sent = []
    with httpx.Client(base_url=daemon.base_url) as client:
        for n in range(3000):
            payload = json.dumps([{"data": {"email": f"b{n}@example.com", "session_id": f"b{n}",
                                            "padding": "x" * 2000}}]).encode()
            headers = {"content-type": "application/json", "x-jebbit-signature": sign(SECRET, payload)}
            assert client.post("/webhooks/jebbit", content=payload, headers=headers).status_code == 200
            sent.append(payload)
    peak = size()
    assert peak > 6_000_000
    fake_segment.heal()
    wait_until(lambda: fake_segment.message_ids() >= message_ids(sent), timeout=60)
    wait_until(lambda: size() < peak / 3, timeout=30)  # pages given back, the -wal cut back
    assert daemon.stop() == 0


def test_a_backup_taken_under_load_is_whole_and_the_load_loses_nothing(daemon_factory, fake_segment, tmp_path):
    import sqlite3
    import subprocess

    fake_segment.fail(503)  # a backlog, so the copy holds records
    daemon = daemon_factory(config(), env=env(fake_segment.url)).start()
    load = Load(daemon.base_url + "/webhooks/jebbit", posters=8).start()
    try:
        wait_until(lambda: len(load.acknowledged) > 500)
        copy = tmp_path / "backup.db"
        done = subprocess.run(["connector", "backup", "-c", str(daemon.config_path), str(copy)], capture_output=True,
                              text=True, env=daemon.env, timeout=60)
        assert done.returncode == 0 and "records not yet delivered" in done.stdout, done.stderr
        wait_until(lambda: len(load.acknowledged) > 1000)  # the load went on meanwhile
    finally:
        load.stop()
    again = subprocess.run(["connector", "backup", "-c", str(daemon.config_path), str(copy)], capture_output=True,
                           text=True, env=daemon.env, timeout=60)
    assert again.returncode == 1 and "exists" in again.stderr
    assert copy.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] >= 500
    fake_segment.heal()
    wait_until(lambda: fake_segment.message_ids() >= message_ids(load.acknowledged), timeout=60)
    assert daemon.stop() == 0
