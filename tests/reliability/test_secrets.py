"""Secrets (write key, shared secrets) never appear in logs, errors, metrics, status or check."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from connector.testing import wait_until
from connector_jebbit.signature import sign

pytestmark = pytest.mark.reliability

SHARED = "jebbit-shared-SECRET-1234567890"
OLD_SHARED = "jebbit-old-SECRET-0987654321"
WRITE_KEY = "segment-write-KEY-abcdefghij"
SPRIG = "sprig-api-SECRET-zyxwvu"
ADMIN = "admin-token-SECRET-qwertyuiop"
CONFIG = """
[service]
log_level = "debug"

[server]
port = {port}

[admin]
port = {admin_port}
token = "${ADMIN}"

[sources.jebbit]
type = "jebbit"
shared_secret = ["${OLD_SHARED}", "${SHARED}"]

[sources.sprig]
type = "sprig"
api_secret = "${SPRIG}"

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[sinks.segment]
type = "segment"
inputs = ["jebbit_segment"]
write_key = "${WRITE_KEY}"
endpoint = "${ENDPOINT}"
flush_interval = 0.05
retry_initial_seconds = 0.05
"""


def test_secrets_never_leak(daemon_factory, fake_segment):
    fake_segment.write_key = "another-key"  # Segment refuses ours: errors get logged
    env = {"SHARED": SHARED, "OLD_SHARED": OLD_SHARED, "WRITE_KEY": WRITE_KEY, "SPRIG": SPRIG, "ADMIN": ADMIN,
           "ENDPOINT": fake_segment.url}
    daemon = daemon_factory(CONFIG, env=env).start()
    daemon.admin_token = ADMIN
    seen: list[str] = []
    body = json.dumps([{"data": {"email": "a@example.com"}}]).encode()
    for headers in ({"x-jebbit-signature": sign(SHARED, body)}, {"x-jebbit-signature": sign("wrong", body)},
                    {"x-jebbit-signature": f"t=1,v1={SHARED}"}, {"x-jebbit-signature": SHARED}):
        seen.append(daemon.post("/webhooks/jebbit", body, headers).text)
    for headers in ({"authorization": f"Bearer {SPRIG}x"}, {"authorization": SPRIG}):
        seen.append(daemon.post("/webhooks/sprig", "{}", headers).text)
    # Segment said 401: the sink pauses (its state shows once the delivery process has published it)
    wait_until(lambda: daemon.admin_get("/status").json()["sinks"].get("segment", {}).get("paused"))
    seen += [daemon.get(p).text for p in ("/readyz", "/healthz")]
    seen += [daemon.admin_get(p).text for p in ("/metrics", "/status", "/dead-letters")]
    seen += [httpx.get(daemon.admin_url + "/status", headers={"authorization": f"Bearer {ADMIN}x"}).text]
    for command in (["check"], ["status"], ["dlq", "list"]):
        result = subprocess.run([sys.executable, "-m", "connector", *command, "-c", str(daemon.config_path)],
                                capture_output=True, text=True, env=daemon.env)
        seen += [result.stdout, result.stderr]
    assert daemon.stop() == 0
    seen.append(daemon.logs())
    everything = "\n".join(seen)
    assert "sink paused" in everything and "HTTP 401" in everything and "admin request refused" in everything
    for secret in (SHARED, OLD_SHARED, WRITE_KEY, SPRIG, ADMIN):
        assert secret not in everything
