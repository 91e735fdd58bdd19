"""Issue 18's first lead, probed: the trivial app under uvicorn + httptools (ASGI) against the same
app under granian's embedded server (RSGI, in the daemon's own asyncio loop, as connector would
have to run it to share the loop with its buffer). Same wrk load as whole_path.py; prints req/s,
p99 and CPU µs per request of the serving process, twice each, alternated.

    python rsgi_probe.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from common import BENCH, cpu_seconds, family, start_process, start_trivial, wrk
from connector.testing import free_port
from whole_path import presign


class TrivialRSGI:
    """Answers every request 202 (``/healthz`` 200), reading the body first, as the ASGI one does."""

    async def __rsgi__(self, scope, protocol):
        if scope.path == "/healthz":
            protocol.response_bytes(200, [("content-type", "application/json")], b'{"status":"ok"}')
            return
        await protocol()
        protocol.response_bytes(202, [("content-type", "application/json")], b'{"accepted":1}')


def serve_rsgi(port: int) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    server = Server(TrivialRSGI(), address="127.0.0.1", port=port, interface=Interfaces.RSGI, log_enabled=False)
    asyncio.run(server.serve())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--serve-rsgi", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_rsgi:
        serve_rsgi(args.serve_rsgi)
        return
    presigned = Path(tempfile.mkdtemp(prefix="connector-bench-")) / "presigned.tsv"
    presign(presigned, 250_000)
    env = {"PRESIGNED": str(presigned), "WRK_THREADS": "2"}

    def measure(name: str, process, port: int) -> None:
        processes = family(process.pid)
        before = cpu_seconds(processes)
        load = wrk(f"http://127.0.0.1:{port}/webhooks/jebbit", BENCH / "presigned_post.lua", 64, args.seconds, env)
        cpu = (cpu_seconds(processes) - before) * 1e6 / max(load["requests"], 1)
        print(f"{name}: {load['rps']:,.0f} req/s, p99 {load['p99_ms']:.1f} ms, {cpu:.1f} µs CPU a request", flush=True)
        process.terminate()
        process.wait()

    for _ in range(2):
        process, port = start_trivial()
        measure("uvicorn + httptools, ASGI", process, port)
        port = free_port()
        process = start_process([sys.executable, __file__, "--serve-rsgi", str(port)], port)
        measure("granian embedded, RSGI ", process, port)


if __name__ == "__main__":
    main()
