"""``connector test``: a config's [[tests]] run its mappers on a record and compare, without secrets or a daemon."""

from __future__ import annotations

import hashlib
import subprocess
import sys

CONFIG = """
[sources.jebbit]
type = "jebbit"
shared_secret = "${JEBBIT_SHARED_SECRET}"

[sources.sprig]
type = "sprig"
api_secret = "${SPRIG_SECRET}"

[sources.forms]
type = "webhook"
path = "/webhooks/forms"

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[mappers.sprig_segment]
type = "sprig_to_segment"
inputs = ["sprig"]

[mappers.forms_segment]
type = "jq"
inputs = ["forms"]
program = '{type: "track", event: "Form Submitted", userId: .data.respondentId, properties: {form: .data.formName}}'

[sinks.out]
type = "stdout"
inputs = ["jebbit_segment", "sprig_segment", "forms_segment"]

[[tests]]
name = "a submission becomes a track"
mapper = "forms_segment"
input = '{"data": {"respondentId": "r1", "formName": "Signup"}}'
expect = [{type = "track", event = "Form Submitted", userId = "r1", properties = {form = "Signup"}}]

[[tests]]
name = "a Jebbit experience is an identify and a track, keyed by the email's hash"
mapper = "jebbit_segment"
input = '{"data": {"email": " Ada@Example.com ", "session_id": "s1", "experience_date": "2026-11-20 10:00:00"}}'
expect = [{type = "identify", userId = "%(hash)s", traits = {email = "Ada@Example.com"}},
          {type = "track", event = "Survey Completed", userId = "%(hash)s"}]

[[tests]]
name = "a Sprig event that is no answer is a dead letter"
mapper = "sprig_segment"
input = '{"eventType": "STUDY_SEEN", "userId": "u1"}'
expect_dead_letter = "STUDY_SEEN"
%(extra)s"""
FAILING = """
[[tests]]
name = "a wrong expectation"
mapper = "forms_segment"
input = '{"data": {"respondentId": "r2", "formName": "Other"}}'
expect = [{type = "track", properties = {form = "Signup"}}]
"""
HASH = hashlib.sha256(b"ada@example.com").hexdigest()


def run(tmp_path, extra: str = "", command: str = "test") -> subprocess.CompletedProcess[str]:
    path = tmp_path / "connector.toml"
    path.write_text(CONFIG % {"hash": HASH, "extra": extra})
    env = {"PATH": ""} if command == "test" else {"JEBBIT_SHARED_SECRET": "s" * 20, "SPRIG_SECRET": "s" * 20}
    return subprocess.run([sys.executable, "-m", "connector", command, "-c", str(path)], capture_output=True,
                          text=True, env=env, timeout=30)  # `test` needs no secrets


def test_the_configs_tests_pass_on_the_jq_jebbit_and_sprig_mappers(tmp_path):
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "PASS  a submission becomes a track",
        "PASS  a Jebbit experience is an identify and a track, keyed by the email's hash",
        "PASS  a Sprig event that is no answer is a dead letter",
        "3 passed, 0 failed"]


def test_a_failing_test_shows_both_sides_and_exits_1(tmp_path):
    done = run(tmp_path, FAILING)
    assert done.returncode == 1
    assert "FAIL  a wrong expectation" in done.stdout and "3 passed, 1 failed" in done.stdout
    expected, got = done.stdout.split("FAIL  a wrong expectation")[1].split("  got:")
    assert '"form":"Signup"' in expected and '"form":"Other"' in got and '"userId":"r2"' in got


def test_check_refuses_a_test_of_a_mapper_that_is_not_there(tmp_path):
    done = run(tmp_path, FAILING.replace('mapper = "forms_segment"', 'mapper = "nope"'), command="check")
    assert done.returncode == 1
    assert "tests[3]: mapper: 'nope' is no mapper of this config" in done.stderr, done.stderr
