"""The jq mapper through the real daemon: a vendor without a plugin, mapped in the config alone."""

from __future__ import annotations

import json
import subprocess
import sys

from connector.ids import canonical, message_id, record_id
from connector.testing import metric, wait_until

CONFIG = """
[server]
port = {port}

[buffer]
type = "memory"

[sources.forms]
type = "webhook"
path = "/in"

[mappers.forms_segment]
type = "jq"
inputs = ["forms"]
args = { event = "Form Submitted" }
program = '''
  if .data.test then empty else
    (.data.fields | map({(.label): .value}) | add) as $answers
    | {type: "identify", userId: .data.respondentId, traits: {email: $answers.Email}},
      {type: "track", userId: .data.respondentId, event: $event,
       properties: {form: .data.formName, answers: $answers, secret: $ENV.SEGMENT_WRITE_KEY, env: env.HOME}}
  end
'''

[sinks.segment]
type = "segment"
inputs = ["forms_segment"]
write_key = "${SEGMENT_WRITE_KEY}"
endpoint = "${SEGMENT_ENDPOINT}"
flush_interval = 0.05
retry_initial_seconds = 0.05
"""


def submission(respondent: str | None, email: str = "ada@example.com", test: bool = False) -> dict:
    return {"eventType": "FORM_RESPONSE", "data": {
        "respondentId": respondent, "formName": "Signup", "test": test,
        "fields": [{"label": "Email", "type": "INPUT_EMAIL", "value": email},
                   {"label": "Plan", "type": "MULTIPLE_CHOICE", "value": "pro"}]}}


def ids_of(body: dict) -> list[str]:
    rid = record_id("forms", canonical(json.loads(json.dumps(body))))
    return [message_id(rid, "forms_segment", index) for index in (0, 1)]


def test_a_jq_program_maps_deliveries_to_segment_field_by_field_with_stable_ids(local_daemon_factory, fake_segment):
    env = {"SEGMENT_WRITE_KEY": "test-write-key", "SEGMENT_ENDPOINT": fake_segment.url}
    daemon = local_daemon_factory(CONFIG, env=env).start()
    first = submission("r1")
    assert daemon.post("/in", json.dumps(first)).status_code == 200
    assert daemon.post("/in", json.dumps(first)).status_code == 200  # the sender retries: the same ids
    wait_until(lambda: len(fake_segment.messages) == 4)
    assert fake_segment.message_ids() == set(ids_of(first)) and not fake_segment.violations
    identify, track = sorted(fake_segment.messages[:2], key=lambda m: m["type"])
    assert identify["userId"] == "r1" and identify["traits"] == {"email": "ada@example.com"}
    assert track["event"] == "Form Submitted"  # from args
    assert track["properties"] == {"form": "Signup", "answers": {"Email": "ada@example.com", "Plan": "pro"},
                                   "secret": None, "env": None}  # the environment is hidden from programs

    daemon.admin_token = None
    before = len(fake_segment.messages)
    assert daemon.post("/in", json.dumps(submission("r2", test=True))).status_code == 200  # `empty`: filtered
    assert daemon.post("/in", json.dumps({"data": {"respondentId": "r3"}})).status_code == 200  # no fields: error
    assert daemon.post("/in", json.dumps(submission(None))).status_code == 200  # no user: Segment's rule
    after = submission("r4")
    assert daemon.post("/in", json.dumps(after)).status_code == 200  # and the next record goes on
    wait_until(lambda: set(ids_of(after)) <= fake_segment.message_ids())
    letters = wait_until(lambda: len(daemon.dead_letters().splitlines()) >= 2 and daemon.dead_letters())
    assert "forms_segment: jq: Cannot iterate over null" in letters
    assert "userId" in letters or "anonymousId" in letters  # the sink's own refusal, before sending
    assert len(fake_segment.messages) == before + 2
    metrics = daemon.admin_get("/metrics").text
    assert metric(metrics, "connector_filtered_records_total", mapper="forms_segment", sink="segment") == 1
    assert daemon.stop() == 0


def test_a_program_that_does_not_compile_is_a_config_error_naming_the_key(tmp_path):
    path = tmp_path / "connector.toml"
    path.write_text(CONFIG.replace("{port}", "8080").replace("map({(.label): .value})", "map({(.label): .value)"))
    done = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(path)], capture_output=True,
                          text=True, env={"SEGMENT_WRITE_KEY": "k", "SEGMENT_ENDPOINT": "http://127.0.0.1:1"},
                          timeout=30)
    assert done.returncode == 1
    assert "mappers.forms_segment.program: does not compile: syntax error" in done.stderr, done.stderr
