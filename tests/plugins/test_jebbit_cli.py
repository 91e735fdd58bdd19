"""``connector jebbit``: set-up, test delivery and backfill against a fake of Jebbit's documented API."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from connector.testing import CommandResult, run_command, wait_until

CONFIG = """
[server]
port = {port}

[buffer]
path = "data/connector.db"

[sources.jebbit]
type = "jebbit"
path = "/webhooks/jebbit"
shared_secret = "${JEBBIT_SHARED_SECRET}"

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


def experience(email: str, session: str) -> dict:
    """A completed experience as Jebbit's help pages document its deliveries."""
    return {"data": {"email": email, "opt_in": "true", "outcome": "example_outcome", "campaign_id": "n3zrik6g",
                     "campaign_name": "New Quiz", "session_id": session, "channel": "Owned+Web",
                     "experience_date": "2026-11-20 10:00:00", "favorite_color": "blue"},
            "event": {"event_number": 0}}


class Jebbit:
    """Runs ``connector jebbit ...`` as a user would (in this process), with the fake's credentials
    in the environment."""

    def __init__(self, fake, tmp_path: Path, segment_url: str):
        self.fake = fake
        self.env: dict[str, str | None] = {
            **fake.env(), "XDG_CACHE_HOME": str(tmp_path / "cache"), "JEBBIT_SHARED_SECRET": None,
            "SEGMENT_ENDPOINT": segment_url}  # not a secret: every command reading the config needs it
        self.outputs: list[str] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> CommandResult:
        done = run_command("jebbit", *args, env={**self.env, **(env or {})})
        self.outputs += [done.stdout, done.stderr]
        return done


@pytest.fixture
def jebbit(fake_jebbit, tmp_path, fake_segment):
    return Jebbit(fake_jebbit, tmp_path, fake_segment.url)


@pytest.fixture
def local_daemon(local_daemon_factory, fake_segment):
    """A daemon in this process made from CONFIG (not started), reading the env file beside the config."""
    return local_daemon_factory(CONFIG, env={"SEGMENT_WRITE_KEY": fake_segment.write_key,
                                             "SEGMENT_ENDPOINT": fake_segment.url}, env_file=".env")


@pytest.fixture
def daemon(daemon_factory, fake_segment, tmp_path):
    """``connector run --env-file .env`` on CONFIG in a subprocess (not started)."""
    env = {"SEGMENT_WRITE_KEY": fake_segment.write_key, "SEGMENT_ENDPOINT": fake_segment.url}
    made = daemon_factory(CONFIG, env={k: v for k, v in {**os.environ, **env}.items() if k != "JEBBIT_SHARED_SECRET"},
                          args=["--env-file", ".env"])
    made.env.pop("JEBBIT_SHARED_SECRET", None)
    return made


def no_secrets_in(texts: list[str], fake) -> None:
    secrets = [fake.client_secret, *fake.tokens, *(i["shared_secret"] for i in fake.integrations.values())]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_setup_test_delivery_and_backfill_make_a_verified_round_trip(jebbit, daemon, fake_jebbit, fake_segment):
    setup = jebbit("setup", "-c", str(daemon.config_path), "--public-url", daemon.base_url)
    assert setup.returncode == 0, setup.stderr
    [(integration_id, integration)] = fake_jebbit.integrations.items()
    assert integration["endpoint"] == f"{daemon.base_url}/webhooks/jebbit" and integration["is_active"]
    env_file = daemon.directory / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.read_text() == f"JEBBIT_SHARED_SECRET={integration['shared_secret']}\n"
    assert f"integration {integration_id} created" in setup.stdout
    assert f"connector jebbit test {integration_id}" in setup.stdout

    daemon.start()
    test = jebbit("test", integration_id, "-c", str(daemon.config_path), "--timeout", "15")
    assert test.returncode == 0, test.stderr
    assert test.stdout.startswith("verified: sources.jebbit checked the signature of Jebbit's test delivery")
    # the daemon verified it before the fake read the answer: wait for the fake's own log of it
    wait_until(lambda: fake_jebbit.deliveries == [("test", integration["endpoint"], 200)])

    first = experience("jane.doe@example.com", "session-1")
    assert fake_jebbit.deliver(integration_id, [first]).status_code == 200
    wait_until(lambda: len(fake_segment.messages) == 2)
    live_ids = fake_segment.message_ids()

    fake_jebbit.sessions = [first, experience("john.roe@example.com", "session-2")]
    backfill = jebbit("backfill", integration_id, "--wait", "-c", str(daemon.config_path), "--poll-seconds", "0.2")
    assert backfill.returncode == 0, backfill.stderr
    assert "ended completed" in backfill.stdout
    assert "the daemon stored 2 record(s) from sources.jebbit meanwhile" in backfill.stdout
    assert "processing" in backfill.stdout
    wait_until(lambda: len(fake_segment.message_ids()) == 4)
    assert live_ids < fake_segment.message_ids()  # the backfilled first session kept its message ids
    assert len(fake_segment.messages) == 6 and not fake_segment.violations
    assert [kind for kind, _, status in fake_jebbit.deliveries if status == 200] == ["test", "live", "backfill",
                                                                                      "backfill"]
    no_secrets_in([*jebbit.outputs, daemon.logs(), daemon.stdout()], fake_jebbit)


def test_setup_twice_reuses_the_integration_and_the_token_and_keeps_other_lines(jebbit, local_daemon, fake_jebbit):
    env_file = local_daemon.directory / ".env"
    env_file.write_text("# mine\nOTHER=kept\nJEBBIT_SHARED_SECRET=old\n")
    env_file.chmod(0o644)
    first = jebbit("setup", "-c", str(local_daemon.config_path), "--public-url", local_daemon.base_url + "/")
    second = jebbit("setup", "-c", str(local_daemon.config_path), "--public-url", local_daemon.base_url, "--hash-pii",
                    "--region", "eu")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    [(integration_id, integration)] = fake_jebbit.integrations.items()
    assert f"integration {integration_id} reused (updated region, hash_pii)" in second.stdout
    assert integration["region"] == "eu" and integration["additional_options"] == {"hash_pii": True}
    assert "no plain email in traits" in second.stdout
    assert env_file.read_text() == f"# mine\nOTHER=kept\nJEBBIT_SHARED_SECRET={integration['shared_secret']}\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert fake_jebbit.token_requests == 1  # the second command reused the cached token
    [cached] = (Path(jebbit.env["XDG_CACHE_HOME"]) / "connector").iterdir()
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    no_secrets_in(jebbit.outputs, fake_jebbit)


def test_a_daemon_holding_a_stale_secret_is_named(jebbit, local_daemon, fake_jebbit):
    assert jebbit("setup", "-c", str(local_daemon.config_path), "--public-url", local_daemon.base_url).returncode == 0
    local_daemon.env["JEBBIT_SHARED_SECRET"] = "the-secret-of-an-earlier-integration"  # the environment wins
    local_daemon.start()
    [integration_id] = fake_jebbit.integrations
    test = jebbit("test", integration_id, "-c", str(local_daemon.config_path), "--timeout", "15")
    assert test.returncode == 1
    assert "the daemon refused Jebbit's test delivery (401 unauthorized: signature does not match" in test.stderr
    assert "restart the daemon with the env file setup wrote" in test.stderr
    assert test.stderr.count("\n") == 1 and "Traceback" not in test.stderr
    status = local_daemon.admin_get("/status").json()["sources"]["jebbit"]
    assert status["last_refused"]["status"] == 401 and status["last_test_delivery"] is None


def test_test_says_when_the_daemon_is_not_running_or_nothing_arrives(jebbit, local_daemon, fake_jebbit, tmp_path):
    assert jebbit("setup", "-c", str(local_daemon.config_path), "--public-url", local_daemon.base_url).returncode == 0
    [integration_id] = fake_jebbit.integrations
    stopped = jebbit("test", integration_id, "-c", str(local_daemon.config_path))
    assert stopped.returncode == 1 and "the daemon is not running at" in stopped.stderr

    local_daemon.start()
    unreachable = "http://127.0.0.1:9/webhooks/jebbit"  # the public URL reaches something else
    assert jebbit("integrations", "update", integration_id, "--endpoint", unreachable).returncode == 0
    nothing = jebbit("test", integration_id, "-c", str(local_daemon.config_path), "--timeout", "2")
    assert nothing.returncode == 1
    assert f"nothing arrived from Jebbit within 2 s: integration {integration_id} posts to {unreachable}" \
        in nothing.stderr


@pytest.mark.parametrize("case", ["credentials", "scope", "unknown id", "network"])
def test_api_failures_are_one_line_naming_what_to_fix(jebbit, fake_jebbit, case):
    env, args = {}, ["integrations", "show", "nope1234"]
    if case == "credentials":
        env = {"JEBBIT_CLIENT_SECRET": "not-the-secret"}
        expected = "Jebbit refused the client credentials (401: Unauthorized): check JEBBIT_CLIENT_ID and " \
                   "JEBBIT_CLIENT_SECRET"
    elif case == "scope":
        fake_jebbit.scopes = ["read:integration"]
        args = ["integrations", "delete", "abc"]
        expected = "Jebbit forbids DELETE /api/v1/integrations/abc (403: Forbidden): the API client lacks the " \
                   "write:integration scope"
    elif case == "unknown id":
        expected = "Jebbit has no integration nope1234 (404)"
    else:
        env = {"JEBBIT_API_URL": "http://127.0.0.1:9"}
        expected = "cannot reach Jebbit's API at http://127.0.0.1:9"
    done = jebbit(*args, env=env)
    assert done.returncode == 1
    assert done.stderr.startswith(f"connector: error: {expected}")
    assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_missing_credentials_name_the_variables(jebbit):
    done = jebbit("self", env={"JEBBIT_CLIENT_ID": "", "JEBBIT_CLIENT_SECRET": ""})
    assert done.returncode == 1
    assert "set JEBBIT_CLIENT_ID and JEBBIT_CLIENT_SECRET" in done.stderr


def test_resources_as_tables_and_json_with_secrets_hidden(jebbit, fake_jebbit, local_daemon):
    assert jebbit("setup", "-c", str(local_daemon.config_path), "--public-url", "https://hooks.example.com").returncode == 0
    [integration_id] = fake_jebbit.integrations
    business = jebbit("self")
    assert business.stdout.split() == ["ID", "NAME", "bTUIhsye", "Jebbit", "Internal"]
    shown = jebbit("integrations", "show", integration_id, "--json")
    assert '"shared_secret":"***"' in shown.stdout and '"hash_pii":false' in shown.stdout
    listed = jebbit("integrations", "list")
    assert listed.stdout.splitlines()[1].split() == [integration_id, "https://hooks.example.com/webhooks/jebbit",
                                                     "us", "yes", "no"]
    created = jebbit("mappings", "create", "--integration", integration_id, "--jebbit-var", "Outcome",
                     "--client-var", "Bucket", "--json")
    assert created.returncode == 0, created.stderr
    [mapping_id] = fake_jebbit.mappings
    assert fake_jebbit.mappings[mapping_id] == {"integration_id": integration_id, "jebbit_var": "Outcome",
                                                "client_var": "Bucket"}
    assert jebbit("mappings", "list").stdout.splitlines()[1].split() == [mapping_id, integration_id, "Outcome",
                                                                          "Bucket", "-"]
    assert jebbit("mappings", "delete", mapping_id).returncode == 0 and not fake_jebbit.mappings
    assert jebbit("integrations", "update", integration_id, "--inactive").returncode == 0
    refused = jebbit("backfill", integration_id)
    assert refused.returncode == 1 and "Jebbit backfills active integrations only" in refused.stderr
    assert jebbit("integrations", "delete", integration_id).returncode == 0 and not fake_jebbit.integrations
    no_secrets_in(jebbit.outputs, fake_jebbit)


def test_setup_needs_a_shared_secret_read_from_one_variable(jebbit, local_daemon):
    local_daemon.config_path.write_text(local_daemon.config_path.read_text().replace(
        'shared_secret = "${JEBBIT_SHARED_SECRET}"', 'shared_secret = "a-literal-secret-in-the-file"'))
    done = jebbit("setup", "-c", str(local_daemon.config_path), "--public-url", "https://hooks.example.com")
    assert done.returncode == 1
    assert f"{local_daemon.config_path}:11: sources.jebbit.shared_secret: is not of the form ${{NAME}}" in done.stderr
    assert "a-literal-secret-in-the-file" not in done.stderr


def test_rotate_secret_replaces_the_integration_around_a_restart_and_refuses_nothing(jebbit, daemon, fake_jebbit):
    daemon.config_path.write_text(daemon.config_path.read_text().replace(
        'shared_secret = "${JEBBIT_SHARED_SECRET}"',
        'shared_secret = ["${JEBBIT_SHARED_SECRET}", "${JEBBIT_SHARED_SECRET_PREVIOUS:-}"]'))
    config = str(daemon.config_path)
    assert jebbit("setup", "-c", config, "--public-url", daemon.base_url).returncode == 0
    [(old_id, old)] = fake_jebbit.integrations.items()
    daemon.start()
    env_file = daemon.directory / ".env"

    started = jebbit("rotate-secret", old_id, "-c", config)
    assert started.returncode == 0, started.stderr
    [new_id] = set(fake_jebbit.integrations) - {old_id}
    new = fake_jebbit.integrations[new_id]
    assert not new["is_active"] and new["endpoint"] == old["endpoint"] and new["shared_secret"] != old["shared_secret"]
    assert env_file.read_text().splitlines() == [f"JEBBIT_SHARED_SECRET={new['shared_secret']}",
                                                 f"JEBBIT_SHARED_SECRET_PREVIOUS={old['shared_secret']}"]
    assert "restart the daemon" in started.stdout and f"rotate-secret {old_id}" in started.stdout

    too_soon = jebbit("rotate-secret", old_id, "-c", config, "--timeout", "10")  # the daemon holds the old one only
    assert too_soon.returncode == 1 and "401" in too_soon.stderr and "restart the daemon" in too_soon.stderr
    assert not fake_jebbit.integrations[new_id]["is_active"] and old_id in fake_jebbit.integrations
    assert fake_jebbit.deliver(old_id, [experience("ada@example.com", "s1")]).status_code == 200

    assert daemon.stop() == 0
    daemon.start()  # now with both secrets
    assert fake_jebbit.deliver(old_id, [experience("ada@example.com", "s2")]).status_code == 200
    finished = jebbit("rotate-secret", old_id, "-c", config, "--timeout", "10")
    assert finished.returncode == 0, finished.stderr
    assert list(fake_jebbit.integrations) == [new_id] and fake_jebbit.integrations[new_id]["is_active"]
    assert "JEBBIT_SHARED_SECRET_PREVIOUS" in finished.stdout
    assert fake_jebbit.deliver(new_id, [experience("ada@example.com", "s3")]).status_code == 200
    assert daemon.stop() == 0
    no_secrets_in([*jebbit.outputs, daemon.logs(), daemon.stdout()], fake_jebbit)


def test_rotate_secret_needs_the_source_to_read_two_variables(jebbit, local_daemon, fake_jebbit):
    assert jebbit("setup", "-c", str(local_daemon.config_path), "--public-url", "https://hooks.example.com").returncode == 0
    [integration_id] = fake_jebbit.integrations
    done = jebbit("rotate-secret", integration_id, "-c", str(local_daemon.config_path))
    assert done.returncode == 1 and f"{local_daemon.config_path}:11: sources.jebbit.shared_secret" in done.stderr
    assert "JEBBIT_SHARED_SECRET_PREVIOUS" in done.stderr and list(fake_jebbit.integrations) == [integration_id]


def test_run_reads_the_env_file_and_the_environment_wins(daemon, tmp_path):
    env_file = daemon.directory / ".env"
    env_file.write_text("JEBBIT_SHARED_SECRET=from-the-file\nthis is not an assignment\n")
    done = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(daemon.config_path),
                           "--env-file", str(env_file)], capture_output=True, text=True, env=daemon.env)
    assert done.returncode == 1 and done.stderr == f"connector: error: {env_file}:2: not a NAME=value line\n"
    env_file.write_text("export JEBBIT_SHARED_SECRET='from the file'\nSEGMENT_WRITE_KEY=ignored\n")
    done = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(daemon.config_path),
                           "--env-file", str(env_file)], capture_output=True, text=True, env=daemon.env)
    assert done.returncode == 0, done.stderr
    daemon.start()
    status = daemon.admin_get("/status").json()
    assert status["sources"]["jebbit"] == {"received": 0, "last_test_delivery": None, "last_refused": None,
                                           "refusals": []}


def test_a_cached_token_jebbit_no_longer_takes_is_replaced_once(jebbit, fake_jebbit):
    assert jebbit("self").returncode == 0
    fake_jebbit.tokens.clear()  # revoked, or issued by another environment
    again = jebbit("self")
    assert again.returncode == 0, again.stderr
    assert fake_jebbit.token_requests == 2
    assert [status for method, path, status in fake_jebbit.requests if path == "/api/v1/self"] == [200, 401, 200]
