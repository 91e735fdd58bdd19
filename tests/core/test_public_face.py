"""Safe on the internet: two listeners, the admin token, HTTPS renewed by SIGHUP, bounded
connections, refusals logged with their client, secrets in rotation, and the warnings."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import httpx
import pytest

from connector.testing import metric, wait_until
from connector_jebbit.signature import sign

NEW, OLD = "the-new-shared-secret-0123456789", "the-old-shared-secret-9876543210"
TOKEN = "admin-token-for-tests-0123456789"
ENV = {"NEW_SECRET": NEW, "OLD_SECRET": OLD, "ADMIN_TOKEN": TOKEN}
CONFIG = """
[server]
port = {port}
trusted_proxies = ["127.0.0.1/32"]
%(server)s

[admin]
port = {admin_port}
token = "${ADMIN_TOKEN}"

[buffer]
type = "memory"

[sources.jebbit]
type = "jebbit"
shared_secret = ["${NEW_SECRET}", "${OLD_SECRET}"]

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[sinks.archive]
type = "file"
inputs = ["jebbit_segment"]
path = "out/events.ndjson"
"""
BODY = json.dumps([{"data": {"email": "ada@example.com", "session_id": "s1", "campaign_id": "c1"}}]).encode()


def config(**server: object) -> str:
    return CONFIG % {"server": "\n".join(f"{key} = {json.dumps(value)}" for key, value in server.items())}


def signed(secret: str = NEW, body: bytes = BODY) -> dict[str, str]:
    return {"content-type": "application/json", "x-jebbit-signature": sign(secret, body)}


def test_admin_routes_answer_only_on_the_admin_listener_and_only_with_the_token(local_daemon_factory):
    daemon = local_daemon_factory(config(), env=ENV).start()
    for path in ("/status", "/tap", "/metrics", "/dead-letters", "/dead-letters/replay", "/"):
        for headers in ({}, {"x-forwarded-for": "127.0.0.1"}, {"authorization": f"Bearer {TOKEN}"}):
            assert daemon.get(path, headers=headers).status_code == 404, path  # the peer is 127.0.0.1 too
            assert httpx.post(daemon.base_url + path, headers=headers).status_code == 404, path
    assert daemon.get("/healthz").status_code == 200 and daemon.get("/readyz").json() == {"status": "ready"}

    assert daemon.admin_get("/healthz").status_code == 200
    assert "connector_http_requests_total" in daemon.admin_get("/metrics").text  # for a scraper without the token
    wrong = ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}, {"authorization": f"bearer {TOKEN}x"})
    for given in wrong:
        for path in ("/status", "/tap", "/dead-letters"):
            refused = httpx.get(daemon.admin_url + path, headers=given)
            assert refused.status_code == 401 and refused.json()["error"] == "unauthorized", (path, given)
            assert refused.headers["www-authenticate"].startswith("Bearer")
    daemon.admin_token = TOKEN
    assert daemon.admin_get("/status").json()["sources"]["jebbit"]["received"] == 0
    assert daemon.admin_get("/dead-letters").json() == {"dead_letters": [], "total": 0}
    assert daemon.stop() == 0
    assert "admin request refused" in daemon.logs() and TOKEN not in daemon.logs()


def test_the_command_line_sends_the_token_from_the_config(daemon_factory):
    daemon = daemon_factory(config(), env=ENV).start()
    assert daemon.post("/webhooks/jebbit", BODY, signed()).status_code == 200

    def cli(*args: str, token: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "connector", *args, "-c", str(daemon.config_path)],
                              capture_output=True, text=True, env={**daemon.env, "ADMIN_TOKEN": token}, timeout=30)

    shown = cli("status", token=TOKEN)
    assert shown.returncode == 0 and re.search(r"jebbit\s+1\s", shown.stdout), shown.stdout + shown.stderr
    assert cli("dlq", "list", token=TOKEN).returncode == 0
    refused = cli("status", token="not-the-token-at-all")
    assert refused.returncode == 1 and "refused the token" in refused.stderr and "admin.token" in refused.stderr
    assert "not-the-token-at-all" not in refused.stderr
    assert daemon.stop() == 0


FORMS = """
[server]
port = {port}

[admin]
port = {admin_port}

[buffer]
type = "memory"

[sources.forms]
type = "webhook"
path = "/in"

[mappers.forms_segment]
type = "jq"
inputs = ["forms"]
program = 'if .bad then error(.bad) else {type: "track", event: "Sent", userId: "u"} end'

[sinks.archive]
type = "file"
inputs = ["forms_segment"]
path = "out/events.ndjson"
"""


def test_without_a_token_the_admin_listener_answers_no_other_site_and_filters_dead_letters(local_daemon_factory):
    daemon = local_daemon_factory(FORMS).start()
    for reason in ("first reason", "SECOND reason", "third reason"):
        assert daemon.post("/in", json.dumps({"bad": reason})).status_code == 200
    wait_until(lambda: daemon.admin_get("/dead-letters").json()["total"] == 3)
    some = daemon.admin_get("/dead-letters", params={"reason": "second", "bodies": "0", "limit": "5"}).json()
    (shown,) = some["dead_letters"]
    assert some["total"] == 1 and shown["body"] is None and "SECOND" in shown["reason"]
    assert len(daemon.admin_get("/dead-letters", params={"limit": "2"}).json()["dead_letters"]) == 2
    assert daemon.admin_get("/dead-letters", params={"sink": "nope"}).json() == {"dead_letters": [], "total": 0}

    # a page elsewhere in the operator's browser: by a rebound DNS name, a form, a cross-origin fetch
    rebound = httpx.get(daemon.admin_url + "/status", headers={"host": "attacker.example:80"})
    assert rebound.status_code == 403 and "localhost" in rebound.json()["detail"]
    scraped = httpx.get(daemon.admin_url + "/metrics", headers={"host": "metrics.internal:80"})
    assert scraped.status_code == 200  # what holds no delivery stays open to a scraper by any name
    by_name = httpx.get(daemon.admin_url + "/status", headers={"host": f"localhost:{daemon.admin_port}"})
    assert by_name.status_code == 200
    replay = daemon.admin_url + "/dead-letters/replay"
    form = httpx.post(replay, content=b'{"all": true}', headers={"content-type": "text/plain"})
    assert form.status_code == 403 and "application/json" in form.json()["detail"]
    foreign = httpx.post(replay, json={"all": True}, headers={"origin": "http://attacker.example"})
    assert foreign.status_code == 403 and foreign.json()["detail"] == "a request from another origin"
    assert daemon.admin_get("/dead-letters").json()["total"] == 3  # none of them did anything
    own = httpx.post(replay, json={"ids": [1]}, headers={"origin": daemon.admin_url})
    assert own.status_code == 200 and own.json() == {"replayed": 1}
    purged = httpx.post(daemon.admin_url + "/dead-letters/purge", json={"ids": [2]})  # the CLI sends no Origin
    assert purged.json() == {"purged": 1}


def test_a_refusal_is_a_rate_limited_warning_naming_the_client_never_the_body(local_daemon_factory):
    daemon = local_daemon_factory(config(), env=ENV).start()
    daemon.admin_token = TOKEN
    secret_looking = json.dumps([{"data": {"email": "grace@example.com"}}]).encode()
    with httpx.Client(base_url=daemon.base_url) as client:
        for _ in range(40):  # bad signatures, through a trusted proxy that names the client
            headers = {**signed("not-a-secret-we-hold", secret_looking),
                       "x-forwarded-for": "198.51.100.1, 203.0.113.7"}
            assert client.post("/webhooks/jebbit", content=secret_looking, headers=headers).status_code == 401
        assert client.post("/webhooks/jebbit", content=b"{", headers=signed(NEW, b"{")).status_code == 400
    wait_until(lambda: "more deliveries refused than logged" in daemon.logs(), timeout=5)
    lines = [json.loads(line) for line in daemon.logs().splitlines() if line.startswith("{")]
    refused = [line for line in lines if line["event"] == "delivery refused"]
    not_logged = sum(line["not_logged"] for line in lines if line["event"] == "more deliveries refused than logged")
    assert len(refused) + not_logged == 41 and len(refused) < 30
    assert {(r["source"], r["status"], r["client"]) for r in refused} >= {("jebbit", 401, "203.0.113.7")}
    assert all("signature" in r["reason"] for r in refused if r["status"] == 401)
    assert "grace@example.com" not in daemon.logs()
    status = daemon.admin_get("/status").json()["sources"]["jebbit"]
    assert len(status["refusals"]) == 20 and status["last_refused"]["status"] == 400  # a ring, newest last
    metrics = daemon.admin_get("/metrics").text
    assert metric(metrics, "connector_refused_deliveries_total", source="jebbit", status="401") == 40
    assert daemon.stop() == 0


def test_each_of_the_rotated_secrets_signs_a_delivery_and_no_other(local_daemon_factory):
    daemon = local_daemon_factory(config(), env=ENV).start()
    assert daemon.post("/webhooks/jebbit", BODY, signed(NEW)).status_code == 200
    assert daemon.post("/webhooks/jebbit", BODY, signed(OLD)).status_code == 200
    assert daemon.post("/webhooks/jebbit", BODY, signed("a-third-secret-nobody-has")).status_code == 401
    assert daemon.stop() == 0


def _raise_own_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


@pytest.mark.reliability  # loads the daemon on purpose: in the slower suite
def test_1100_idle_connections_under_a_soft_limit_of_1024_files_then_a_webhook_is_answered_at_once(daemon_factory):
    _raise_own_file_limit(1500)

    def soft_limit_1024() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    daemon = daemon_factory(config(), env=ENV, preexec_fn=soft_limit_1024).start()
    with open(f"/proc/{daemon.process.pid}/limits") as fh:
        limits = fh.read()
    soft = int(re.search(r"Max open files\s+(\d+)", limits).group(1))
    assert soft >= 4096 + 64, limits  # raised for max_connections by the daemon itself
    idle = []
    try:
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", daemon.port)))
        started = time.monotonic()
        assert daemon.post("/webhooks/jebbit", BODY, signed(), timeout=5).status_code == 200
        assert time.monotonic() - started < 2
        assert daemon.get("/healthz", timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()
    assert daemon.stop() == 0


def test_past_max_connections_the_quietest_connection_makes_room(local_daemon_factory):
    daemon = local_daemon_factory(config(max_connections=50), env=ENV).start()
    idle = [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(80)]
    try:
        assert daemon.post("/webhooks/jebbit", BODY, signed(), timeout=5).status_code == 200
        closed = wait_until(lambda: metric(daemon.admin_get("/metrics").text, "connector_connections_closed_total",
                                           listener="server", reason="max_connections"))
        assert closed >= 30
        assert idle[0].recv(1) == b""  # the first to connect, and quiet since, was closed first
        wait_until(lambda: "max_connections reached" in daemon.logs(), timeout=5)
    finally:
        for sock in idle:
            sock.close()
    assert daemon.stop() == 0


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    sock.settimeout(timeout)
    started, data = time.monotonic(), b""
    while chunk := sock.recv(4096):
        data += chunk
    return data, time.monotonic() - started


def test_slow_heads_silent_and_idle_connections_are_closed_at_their_deadlines(local_daemon_factory):
    daemon = local_daemon_factory(config(header_timeout_seconds=1, idle_timeout_seconds=1), env=ENV).start()
    slowloris = socket.create_connection(("127.0.0.1", daemon.port))
    slowloris.sendall(b"POST /webhooks/jebbit HTTP/1.1\r\nhost: x\r\n")

    def trickle() -> None:
        try:
            for _ in range(20):
                time.sleep(0.3)
                slowloris.sendall(b"x-a: b\r\n")
        except OSError:
            pass  # closed by the server: what the test waits for

    threading.Thread(target=trickle, daemon=True).start()
    silent = socket.create_connection(("127.0.0.1", daemon.port))
    kept_alive = socket.create_connection(("127.0.0.1", daemon.port))
    kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    huge = socket.create_connection(("127.0.0.1", daemon.port))
    huge.sendall(b"POST /webhooks/jebbit HTTP/1.1\r\nhost: x\r\nx-padding: " + b"a" * 40_000)

    answer, took = _read_until_closed(slowloris, 5)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request head did not arrive" in answer and took < 3
    assert _read_until_closed(silent, 5)[0] == b""
    answer, _ = _read_until_closed(kept_alive, 5)  # answered, then closed when idle
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1") == 1
    assert _read_until_closed(huge, 5)[0].startswith(b"HTTP/1.1 431 ")
    assert daemon.post("/webhooks/jebbit", BODY, signed()).status_code == 200  # the rest goes on
    wait_until(lambda: "connections closed: no whole request head in time" in daemon.logs(), timeout=5)
    for sock in (slowloris, silent, kept_alive, huge):
        sock.close()
    assert daemon.stop() == 0


@pytest.fixture
def certificates(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    paths = {"cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}

    def issue() -> bytes:
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        paths["cert"].write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        paths["key"].write_bytes(leaf.private_key_pem.bytes())
        return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())

    client = ssl.create_default_context()
    ca.configure_trust(client)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return issue, paths, client


def _served_certificate(port: int, client: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)


@pytest.mark.reliability  # certificates replaced under load, and SIGHUP: in the slower suite
def test_https_is_served_and_a_renewed_certificate_is_taken_on_sighup_without_a_dropped_request(daemon_factory,
                                                                                                  certificates):
    issue, paths, client = certificates
    first = issue()
    daemon = daemon_factory(config(tls_cert=str(paths["cert"]), tls_key=str(paths["key"])), env=ENV).start()
    url = f"https://127.0.0.1:{daemon.port}/webhooks/jebbit"
    assert httpx.post(url, content=BODY, headers=signed(), verify=client).status_code == 200
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the HTTPS port gets no answer
        httpx.post(f"http://127.0.0.1:{daemon.port}/webhooks/jebbit", content=BODY, headers=signed(), timeout=5)
    assert _served_certificate(daemon.port, client) == first
    ca_file = str(paths["cert"].parent / "ca.pem")
    sent = subprocess.run(["jebbit-send", "--url", url, "--secret", NEW, "--cacert", ca_file], capture_output=True,
                          text=True, timeout=30)
    assert sent.returncode == 0 and sent.stdout.startswith('200 {"accepted":1}'), sent.stdout + sent.stderr

    statuses: list[int] = []
    stop = threading.Event()

    def keep_posting() -> None:
        with httpx.Client(verify=client) as kept:  # one kept-alive connection, and a new one each time
            while not stop.is_set():
                statuses.append(kept.post(url, content=BODY, headers=signed()).status_code)
                statuses.append(httpx.post(url, content=BODY, headers=signed(), verify=client).status_code)

    poster = threading.Thread(target=keep_posting)
    poster.start()
    try:
        wait_until(lambda: len(statuses) > 20)
        second = issue()
        daemon.process.send_signal(signal.SIGHUP)
        wait_until(lambda: _served_certificate(daemon.port, client) == second)
        wait_until(lambda: len(statuses) > 80)
    finally:
        stop.set()
        poster.join(10)
    assert set(statuses) == {200}, statuses

    paths["key"].write_text("not a key\n")  # a bad renewal: logged, the certificate in use is kept
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "the new certificate could not be loaded" in daemon.logs())
    assert _served_certificate(daemon.port, client) == second
    assert httpx.post(url, content=BODY, headers=signed(), verify=client).status_code == 200
    assert daemon.process.poll() is None  # SIGHUP never stops the daemon
    assert daemon.stop() == 0
    assert "certificate reloaded" in daemon.logs()


def test_an_https_admin_listener_is_read_by_the_command_line_trusting_its_own_certificate(daemon_factory,
                                                                                          certificates):
    issue, paths, _ = certificates
    issue()
    tls = f'tls_cert = "{paths["cert"]}"\ntls_key = "{paths["key"]}"\n'
    daemon = daemon_factory(config().replace('token = "${ADMIN_TOKEN}"\n', 'token = "${ADMIN_TOKEN}"\n' + tls), env=ENV)
    daemon.admin_scheme = "https"
    daemon.start()
    assert daemon.post("/webhooks/jebbit", BODY, signed()).status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{daemon.admin_port}/status", timeout=5)
    shown = subprocess.run([sys.executable, "-m", "connector", "status", "-c", str(daemon.config_path)],
                           capture_output=True, text=True, env=daemon.env, timeout=30)
    assert shown.returncode == 0 and re.search(r"jebbit\s+1\s", shown.stdout), shown.stdout + shown.stderr
    assert daemon.stop() == 0


def test_the_command_line_refuses_a_daemon_of_another_config_on_its_admin_port(daemon_factory, tmp_path):
    daemon = daemon_factory(config().replace('type = "memory"', 'type = "sqlite"\npath = "one.db"'), env=ENV).start()
    other = daemon.directory / "other.toml"
    other.write_text(daemon.config_path.read_text().replace('path = "one.db"', 'path = "two.db"'))
    for command in (["status"], ["dlq", "list"]):
        done = subprocess.run([sys.executable, "-m", "connector", *command, "-c", str(other)], capture_output=True,
                              text=True, env=daemon.env, timeout=30)
        assert done.returncode == 1 and "keeps another buffer" in done.stderr and "two.db" in done.stderr, done.stderr
    assert daemon.stop() == 0


@pytest.mark.parametrize("server, admin, key, message", [
    ('host = "0.0.0.0"', 'host = "0.0.0.0"', "admin.token", "is not loopback: set admin.token"),
    ('tls_cert = "cert.pem"', "", "server.tls_key", "is missing: set both server.tls_cert and server.tls_key"),
    ('trusted_proxies = ["10.0.0.0/33"]', "", "server.trusted_proxies", "'10.0.0.0/33' is not an address or a CIDR"),
    ("port = 9999", "port = 9999", "admin.port", "9999 is also [server] port"),
])
def test_a_listener_set_up_wrong_is_refused_naming_the_key(tmp_path, server, admin, key, message):
    path = tmp_path / "connector.toml"
    path.write_text(f'[server]\n{server}\n[admin]\n{admin}\n[sources.in]\ntype = "webhook"\npath = "/in"\n'
                    '[sinks.out]\ntype = "stdout"\ninputs = ["in"]\n')
    for command in ("check", "run") if key == "admin.token" else ("check",):  # the same loader: one run is enough
        done = subprocess.run([sys.executable, "-m", "connector", command, "-c", str(path)], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 1 and f": {key}: " in done.stderr and message in done.stderr, done.stderr


def test_check_warns_of_the_example_secret_plain_http_on_a_public_address_and_a_public_admin(tmp_path):
    path = tmp_path / "connector.toml"
    path.write_text('[server]\nhost = "0.0.0.0"\n[admin]\nhost = "0.0.0.0"\ntoken = "${TOKEN}"\n'
                    '[sources.jebbit]\ntype = "jebbit"\nshared_secret = "dev-secret-change-me"\n'
                    '[sinks.out]\ntype = "stdout"\ninputs = ["jebbit"]\n')
    done = subprocess.run([sys.executable, "-m", "connector", "check", "-c", str(path)], capture_output=True,
                          text=True, env={"TOKEN": "short", "PATH": ""}, timeout=30)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stdout.splitlines() if line.startswith("warning: ")]
    assert any("sources.jebbit.shared_secret is the example secret" in w for w in warnings)
    assert any("server.host '0.0.0.0' serves webhooks on a public address over plain HTTP" in w for w in warnings)
    assert any("admin.host '0.0.0.0' is not loopback" in w for w in warnings)
    assert any("admin.token is shorter than 16 characters" in w for w in warnings)
    assert "dev-secret-change-me" not in done.stdout and "short" not in done.stdout.replace("shorter", "")


@pytest.mark.parametrize("config, good, bad", [
    ("sprig", [{"authorization": f"Bearer {NEW}"}, {"authorization": f"Bearer {OLD}"}],
     [{"authorization": "Bearer another-secret-nobody-has"}, {}]),
    ("bearer", [{"authorization": f"Bearer {NEW}"}, {"authorization": f"Bearer {OLD}"}],
     [{"authorization": "Bearer another-secret-nobody-has"}]),
    ("hmac", [{"x-signature": "sha256=" + hmac.new(NEW.encode(), b"{}", hashlib.sha256).hexdigest()},
              {"x-signature": hmac.new(OLD.encode(), b"{}", hashlib.sha256).hexdigest()}],
     [{"x-signature": hmac.new(b"another-secret-nobody-has", b"{}", hashlib.sha256).hexdigest()}]),
])
def test_every_signed_source_takes_a_list_of_secrets_while_one_rotates(config, good, bad):
    from connector.testing import WebhookHarness
    from connector_sprig.webhook import SprigWebhookConfig
    from connector_webhook.source import WebhookSourceConfig

    made = {"sprig": SprigWebhookConfig(api_secret=[NEW, OLD]),
            "bearer": WebhookSourceConfig(path="/in", bearer_token=[NEW, OLD]),
            "hmac": WebhookSourceConfig(path="/in", hmac_secret=[NEW, OLD])}[config]
    with WebhookHarness(made) as harness:
        assert [harness.post(b"{}", headers).status_code for headers in good] == [200] * len(good)
        assert [harness.post(b"{}", headers).status_code for headers in bad] == [401] * len(bad)
        assert len(harness.stored()) == len(good)


def test_a_signed_source_whose_secrets_are_all_empty_is_refused_not_open_to_anyone():
    from connector import ConfigError
    from connector.testing import build_context
    from connector_sprig.webhook import SprigWebhookConfig
    from connector_webhook.source import WebhookSourceConfig

    for config, key in ((WebhookSourceConfig(path="/in", bearer_token=["", ""]), "bearer_token"),
                        (WebhookSourceConfig(path="/in", hmac_secret=""), "hmac_secret"),
                        (SprigWebhookConfig(api_secret=[""]), "api_secret")):
        with pytest.raises(ConfigError, match=f"sources.src.{key}: "):
            config.build(build_context("src"))

