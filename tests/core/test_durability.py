"""Durable delivery with the real daemon: SIGKILL under load loses nothing; dead letters replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import httpx
import pytest

from connector.testing import wait_until

CONFIG = """
[server]
port = {port}

[buffer]
type = "sqlite"
path = "data/connector.db"

[sources.events]
type = "webhook"
path = "/in"

[sinks.archive]
type = "file"
inputs = ["events"]
path = "out/events.ndjson"
"""


def delivered(path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}


def post_until_stopped(url: str, client_no: int, acknowledged: list[str], stop: threading.Event) -> None:
    with httpx.Client(timeout=5) as client:
        n = 0
        while not stop.is_set():
            event_id = f"c{client_no}-{n}"
            n += 1
            try:
                response = client.post(url, content=json.dumps({"id": event_id}),
                                       headers={"content-type": "application/json"})
            except httpx.TransportError:
                continue  # the daemon died mid-request: not acknowledged
            if response.status_code == 200:
                acknowledged.append(event_id)


@pytest.mark.reliability  # a process-level fault: in the slower suite
def test_sigkill_under_load_loses_no_acknowledged_record(daemon_factory, tmp_path):
    daemon = daemon_factory(CONFIG).start()
    acknowledged: list[str] = []
    stop = threading.Event()
    posters = [threading.Thread(target=post_until_stopped, args=(daemon.base_url + "/in", i, acknowledged, stop))
               for i in range(16)]
    for poster in posters:
        poster.start()
    wait_until(lambda: len(acknowledged) >= 1500, timeout=30)
    daemon.kill()
    stop.set()
    for poster in posters:
        poster.join()

    out = tmp_path / "out" / "events.ndjson"
    restarted = daemon_factory(CONFIG).start()
    wait_until(lambda: set(acknowledged) <= delivered(out), timeout=30)
    assert restarted.stop() == 0
    assert set(acknowledged) <= delivered(out)


DLQ_CONFIG = CONFIG + """
[sinks.picky]
type = "picky"
inputs = ["events"]
path = "out/picky.ndjson"
refuse = "poison"
refuse_while = "refusing"
"""


def dlq(daemon, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "connector", "dlq", *args, "-c", str(daemon.config_path)],
                            capture_output=True, text=True, env={**os.environ, **daemon.env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_refused_record_is_dead_lettered_alone_and_replays_after_the_fix(local_daemon_factory, tmp_path, plugin_env):
    (tmp_path / "refusing").touch()
    daemon = local_daemon_factory(DLQ_CONFIG, env=plugin_env).start()
    for i in range(20):
        body = {"id": f"e{i}", "kind": "poison" if i == 7 else "fine"}
        assert daemon.post("/in", json.dumps(body)).status_code == 200
    picky = tmp_path / "out" / "picky.ndjson"
    archive = tmp_path / "out" / "events.ndjson"
    wait_until(lambda: len(delivered(picky)) == 19 and len(delivered(archive)) == 20)
    assert "e7" not in delivered(picky)

    listing = wait_until(lambda: dlq(daemon, "list").strip())
    assert len(listing.splitlines()) == 1
    assert "\tpicky\t" in listing and "refused: contains poison" in listing
    letter_id = listing.split("\t")[0]
    assert '"kind":"poison"' in dlq(daemon, "show", letter_id)
    unknown = subprocess.run([sys.executable, "-m", "connector", "dlq", "show", "424242", "-c", str(daemon.config_path)],
                             capture_output=True, text=True, env={**os.environ, **daemon.env})
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.startswith("connector: error: no dead letter with id 424242")

    (tmp_path / "refusing").unlink()  # the cause is fixed
    assert "replayed 1 dead letter(s)" in dlq(daemon, "replay", "--all")
    wait_until(lambda: "e7" in delivered(picky))
    wait_until(lambda: daemon.admin_get("/status").json()["sinks"]["archive"]["lag"] == 0)  # it read past the replay
    assert len(archive.read_text().splitlines()) == 20  # and did not take it: the replay is for picky only
    assert dlq(daemon, "list") == ""
    assert daemon.stop() == 0
