"""A full disk: the request gets 503, the daemon stays up and not ready, and recovers once space is freed."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from connector.testing import wait_until

from .load import SECRET, body, config, env, message_ids
from connector_jebbit.signature import sign

pytestmark = pytest.mark.reliability


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB tmpfs (needs root and mount; skipped where that is not allowed)."""
    mountpoint = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mountpoint.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small filesystem here")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def test_disk_full_answers_503_stays_up_and_recovers(daemon_factory, fake_segment, tiny_disk):
    ballast = tiny_disk / "ballast"
    ballast.write_bytes(b"\0" * (4 * 1024 * 1024 - 700 * 1024))  # another program fills the disk
    text = config(buffer_extra="min_free_bytes = 0").replace('path = "data/connector.db"',
                                                             f'path = "{tiny_disk}/connector.db"')  # SQLite's ENOSPC
    daemon = daemon_factory(text, env=env(fake_segment.url)).start()
    acknowledged, statuses = [], []
    for n in range(5000):
        payload = body(1, n)
        response = daemon.post("/webhooks/jebbit", payload, {"x-jebbit-signature": sign(SECRET, payload)})
        statuses.append(response.status_code)
        if response.status_code == 200:
            acknowledged.append(payload)
        if response.status_code == 503:
            assert response.json()["error"] == "buffer unavailable" and response.headers["retry-after"]
            refusal = response.json()["detail"]
            break
    assert statuses[-1] == 503 and len(acknowledged) > 20, statuses[-5:]
    # the cause, in the answer and the log: what the operator needs at 3 a.m.
    assert refusal == "the records could not be stored: database or disk is full; retry later", refusal
    assert daemon.get("/healthz").status_code == 200
    assert daemon.get("/readyz").json() == {"status": "not ready"}  # names no component to the public side
    ballast.unlink()  # the operator frees space

    def accepted_again() -> bool:
        payload = body(2, len(statuses))
        statuses.append(daemon.post("/webhooks/jebbit", payload,
                                    {"x-jebbit-signature": sign(SECRET, payload)}).status_code)
        if statuses[-1] == 200:
            acknowledged.append(payload)
        return statuses[-1] == 200

    wait_until(accepted_again, timeout=30, interval=0.2)
    wait_until(lambda: daemon.get("/readyz").status_code == 200, timeout=30)
    wanted = message_ids(acknowledged)
    wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=30)
    assert daemon.stop() == 0
    assert "buffer unavailable" in daemon.logs() and "database or disk is full" in daemon.logs()


def test_a_file_sink_on_a_full_disk_pauses_alone_and_catches_up_with_whole_lines(daemon_factory, fake_segment,
                                                                                   tiny_disk):
    archive = tiny_disk / "events.ndjson"
    ballast = tiny_disk / "ballast"
    ballast.write_bytes(b"\0" * (4 * 1024 * 1024 - 40 * 1024))  # room for a few dozen lines, not 400
    extra = f'[sinks.archive]\ntype = "file"\ninputs = ["jebbit_segment"]\npath = "{archive}"\n'
    daemon = daemon_factory(config(sink_extra=extra), env=env(fake_segment.url)).start()
    acknowledged = []
    for n in range(200):
        payload = body(3, n)
        signature = {"x-jebbit-signature": sign(SECRET, payload)}
        assert daemon.post("/webhooks/jebbit", payload, signature).status_code == 200
        acknowledged.append(payload)
    wanted = message_ids(acknowledged)
    wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=30)  # Segment gets everything meanwhile
    paused = wait_until(lambda: daemon.admin_get("/status").json()["sinks"].get("archive", {}).get("paused"))
    assert "No space left on device" in paused
    status = subprocess.run(["connector", "status", "-c", str(daemon.config_path)], capture_output=True, text=True,
                            env=daemon.env)
    assert "paused" in status.stdout and "No space left on device" in status.stdout
    assert daemon.process.poll() is None
    ballast.unlink()  # the operator frees space: the file catches up by itself
    wait_until(lambda: len(archive.read_bytes().splitlines()) >= 400, timeout=90)
    wait_until(lambda: daemon.admin_get("/status").json()["sinks"]["archive"]["paused"] is None)
    lines = archive.read_bytes().splitlines()
    assert archive.read_bytes().endswith(b"\n")
    written = {(json.loads(line)["type"], json.loads(line)["userId"]) for line in lines}  # each line whole
    assert len(written) == len(lines) == len(wanted)  # an identify and a track each: nothing torn, lost or doubled
    assert daemon.stop() == 0


def test_below_min_free_bytes_the_ingress_answers_503_until_space_returns(daemon_factory, fake_segment, tiny_disk):
    fake_segment.fail(503)  # Segment is down too: what is stored waits in the buffer
    ballast = tiny_disk / "ballast"
    ballast.write_bytes(b"\0" * (4 * 1024 * 1024 - 1536 * 1024))  # 1.5 MiB left; the guard is at 1 MiB
    text = config(buffer_extra="min_free_bytes = 1048576").replace('path = "data/connector.db"',
                                                                   f'path = "{tiny_disk}/connector.db"')
    daemon = daemon_factory(text, env=env(fake_segment.url)).start()
    acknowledged, statuses = [], []

    def post(n: int) -> int:
        payload = body(4, n)
        response = daemon.post("/webhooks/jebbit", payload, {"x-jebbit-signature": sign(SECRET, payload)})
        if response.status_code == 200:
            acknowledged.append(payload)
        elif response.status_code == 503:
            assert response.headers["retry-after"] and "min_free_bytes" in response.json()["detail"]
        statuses.append(response.status_code)
        return response.status_code

    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (700 * 1024))  # another program takes space: below the guard
    wait_until(lambda: post(len(statuses)) == 503, timeout=10)
    assert daemon.get("/readyz").status_code == 503 and daemon.process.poll() is None
    assert "disk nearly full" in daemon.logs()
    filler.unlink()
    wait_until(lambda: post(len(statuses)) == 200, timeout=10)
    wait_until(lambda: daemon.get("/readyz").status_code == 200)
    fake_segment.heal()
    wait_until(lambda: fake_segment.message_ids() >= message_ids(acknowledged), timeout=30)  # without a restart
    assert daemon.stop() == 0
    assert "disk space back" in daemon.logs()
