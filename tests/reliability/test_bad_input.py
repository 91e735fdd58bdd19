"""Bad input of every kind: the right status, nothing stored, the daemon stays up and serves."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from connector.testing import wait_until
from connector_jebbit.signature import sign

pytestmark = pytest.mark.reliability

SECRET = "bad-input-secret"
CONFIG = """
[server]
port = {port}
max_body_bytes = 200000
body_timeout_seconds = 1

[sources.jebbit]
type = "jebbit"
shared_secret = "%s"

[sinks.archive]
type = "file"
inputs = ["jebbit"]
path = "out/records.ndjson"
""" % SECRET


def signed(body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", "x-jebbit-signature": sign(SECRET, body)}


def raw_request(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """What the daemon answered ``data`` (it may answer and close before the whole of a huge request
    is sent: the rest of the send then meets a reset, and the answer may be lost with it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        chunks = []
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass
        return b"".join(chunks)


def test_every_bad_input_is_refused_and_nothing_is_stored(daemon_factory, tmp_path):
    daemon = daemon_factory(CONFIG).start()
    url = daemon.base_url + "/webhooks/jebbit"
    nested = b"[" * 10_000 + b"]" * 10_000
    non_utf8 = b'[{"data": {"email": "\xff\xfe@example.com"}}]'
    cases = {
        "unknown path": (httpx.post(daemon.base_url + "/nope", content=b"{}"), 404),
        "wrong method": (httpx.put(url, content=b"{}"), 405),
        "declared too large": (httpx.post(url, content=b"x" * 300_000, headers=signed(b"x")), 413),
        "not JSON": (httpx.post(url, content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"}), 415),
        "no signature": (httpx.post(url, content=b"[]", headers={"content-type": "application/json"}), 401),
        "malformed JSON": (httpx.post(url, content=b"[{", headers=signed(b"[{")), 400),
        "non-UTF-8": (httpx.post(url, content=non_utf8, headers=signed(non_utf8)), 400),
        "deeply nested": (httpx.post(url, content=nested, headers=signed(nested)), 400),
        "oversized header": (httpx.post(url, content=b"[]", headers={**signed(b"[]"), "x-padding": "p" * 60_000}), 431),
    }
    for name, (response, status) in cases.items():
        assert response.status_code >= 400, name
        if status is not None:
            assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
            assert response.json()["error"], name
        assert daemon.get("/healthz").status_code == 200, f"down after {name}"

    started = time.monotonic()
    answer = raw_request(daemon.port, b"POST /webhooks/jebbit HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                                      b"content-length: 1000\r\n\r\n[{\"data\":")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert time.monotonic() - started < 4

    huge_header = raw_request(daemon.port, b"POST /webhooks/jebbit HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 2_000_000
                              + b"\r\n\r\n")
    assert not huge_header.startswith(b"HTTP/1.1 2"), huge_header[:100]
    assert daemon.get("/healthz").status_code == 200

    good = json.dumps([{"data": {"email": "ok@example.com"}}]).encode()
    assert httpx.post(url, content=good, headers=signed(good)).status_code == 200
    out = tmp_path / "out" / "records.ndjson"
    wait_until(lambda: out.exists() and out.read_text().strip())
    assert daemon.stop() == 0
    assert [json.loads(line)["data"]["email"] for line in out.read_text().splitlines()] == ["ok@example.com"]
    assert "Exception in ASGI application" not in daemon.logs() and "Traceback" not in daemon.logs()
    print(f"bad inputs tried: {', '.join(cases)}, slow body (408), 2 MB header")
