"""What HTTPS costs the public listener: the default daemon (sqlite, Segment a local fake) over
plain HTTP and over its own TLS, in one run, with kept-alive connections (64) and with a new
connection a request (8 connections, ``Connection: close``: a TLS handshake each). Prints
accepted/s, p50/p99 and CPU µs a request of the daemon's processes, and the differences.

    python tls_cost.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import BENCH, cpu_seconds, family, start_daemon, start_fake_segment, table, wrk
from whole_path import CONNECTOR, SECRET, certificate, presign


def measure(tls: str, fake_url: str, connections: int, seconds: int, env: dict[str, str]) -> list[object]:
    config = (CONNECTOR % ('type = "sqlite"', SECRET, fake_url)).replace("port = {port}\n", "port = {port}\n" + tls)
    daemon = start_daemon(config)
    try:
        url = (daemon.base_url.replace("http:", "https:") if tls else daemon.base_url) + "/webhooks/jebbit"
        processes = family(daemon.process.pid)
        before = cpu_seconds(processes)
        load = wrk(url, BENCH / "presigned_post.lua", connections, seconds, env)
        accepted = load["requests"] - load["non2xx"] - load["errors"]
        cpu_us = (cpu_seconds(processes) - before) * 1e6 / max(accepted, 1)
        return [accepted / seconds, load["p50_ms"], load["p99_ms"], cpu_us, load["non2xx"] + load["errors"]]
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="connector-bench-"))
    presigned = directory / "presigned.tsv"
    presign(presigned, 250_000)
    cert, key = certificate(directory)
    tls = f'tls_cert = "{cert}"\ntls_key = "{key}"\n'
    rows = []
    fake_process, fake_url = start_fake_segment()
    try:
        for label, connections, extra in (("kept alive, 64 connections", 64, {}),
                                          ("a connection a request, 8 at a time", 8, {"CLOSE": "1"})):
            env = {"PRESIGNED": str(presigned), "WRK_THREADS": "2", **extra}
            plain = measure("", fake_url, connections, args.seconds, env)
            https = measure(tls, fake_url, connections, args.seconds, env)
            rows += [[f"HTTP, {label}", *plain], [f"HTTPS, {label}", *https],
                     [f"HTTPS costs, {label}", "-", "-", "-", https[3] - plain[3], "-"]]
    finally:
        fake_process.terminate()
        fake_process.wait()
    print(table(["scenario", "accepted/s", "p50 ms", "p99 ms", "CPU µs/request", "errors"], rows))


if __name__ == "__main__":
    main()
