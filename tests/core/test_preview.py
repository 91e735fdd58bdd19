"""``connector preview``: a mapper as a config defines it, on the records the buffer kept after delivery."""

from __future__ import annotations

import json
import subprocess
import sys

from connector.testing import wait_until

CONFIG = """
[server]
port = {port}

[buffer]
type = "sqlite"
path = "data/connector.db"
retain_seconds = %(retain)s

[sources.forms]
type = "webhook"
path = "/in"

[mappers.forms_segment]
type = "jq"
inputs = ["forms"]
program = '%(program)s'

[sinks.archive]
type = "file"
inputs = ["forms_segment"]
path = "out/events.ndjson"
"""
PROGRAM = '{type: "track", event: "Form Submitted", userId: .user, properties: {plan: .plan}}'
CHANGED = 'if .plan == "pro" then {type: "track", event: "Upgraded", userId: .user} else %s end' % PROGRAM


def preview(daemon, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector", "preview", "-c", config, "--mapper", "forms_segment",
                           *args], capture_output=True, text=True, env=daemon.env, timeout=30)


def test_preview_maps_the_retained_records_and_against_an_old_config_shows_only_what_changes(daemon_factory,
                                                                                             tmp_path):
    daemon = daemon_factory(CONFIG % {"retain": 3600, "program": PROGRAM}).start()
    for n, plan in enumerate(["free", "pro", "free", "pro", "free"]):
        assert daemon.post("/in", json.dumps({"user": f"u{n}", "plan": plan})).status_code == 200
    archive = tmp_path / "out" / "events.ndjson"
    wait_until(lambda: archive.exists() and len(archive.read_text().splitlines()) == 5)  # delivered, and kept

    shown = preview(daemon, str(daemon.config_path), "--last", "3")
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [line["messages"][0]["userId"] for line in lines] == ["u2", "u3", "u4"]

    changed = daemon.directory / "new.toml"
    changed.write_text(daemon.config_path.read_text().replace(PROGRAM, CHANGED))
    diff = preview(daemon, str(changed), "--against", str(daemon.config_path))
    assert diff.returncode == 0, diff.stderr
    differing = [json.loads(line) for line in diff.stdout.splitlines()]
    assert [d["new"]["messages"][0]["event"] for d in differing] == ["Upgraded", "Upgraded"]
    assert [d["old"]["messages"][0]["userId"] for d in differing] == ["u1", "u3"]
    assert daemon.stop() == 0


def test_preview_says_when_nothing_is_retained(daemon_factory, tmp_path):
    daemon = daemon_factory(CONFIG % {"retain": 0, "program": PROGRAM}).start()
    assert daemon.post("/in", json.dumps({"user": "u1", "plan": "free"})).status_code == 200
    archive = tmp_path / "out" / "events.ndjson"
    wait_until(lambda: archive.exists() and archive.read_text())
    wait_until(lambda: preview(daemon, str(daemon.config_path)).returncode == 1)  # once the delivered record left
    done = preview(daemon, str(daemon.config_path))
    assert "holds no records of forms" in done.stderr and "retain_seconds" in done.stderr
    assert daemon.stop() == 0
