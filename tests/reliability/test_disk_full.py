"""A full disk: the request gets 503, the daemon stays up and not ready, and recovers once space is freed."""

from __future__ import annotations

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
    text = config().replace('path = "data/connector.db"', f'path = "{tiny_disk}/connector.db"')
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
            break
    assert statuses[-1] == 503 and len(acknowledged) > 20, statuses[-5:]
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
    assert "buffer unavailable" in daemon.logs()
