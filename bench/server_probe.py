"""Issue 18's leads, probed: the trivial app (202 to every POST) under three HTTP layers, each in
one asyncio loop as connector would run it (sharing the loop with its buffer):
1. uvicorn + httptools, ASGI (what connector uses, and the whole_path ceiling);
2. granian's embedded server, RSGI;
3. httptools directly on an asyncio Protocol (uvloop), no ASGI: a parser callback per request and
   one ``transport.write`` of a prepared answer.
Same wrk load as whole_path.py; prints req/s, p99 and CPU µs a request of the serving process,
twice each, alternated.

    python server_probe.py [--seconds 10]
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


ANSWER = b'HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{"accepted":1}'
HEALTHY = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{"status":"ok"}'


class TrivialProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive with httptools: the whole request parsed, then one prepared answer."""

    def connection_made(self, transport) -> None:
        import httptools

        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.errors = httptools.HttpParserError
        self.url = b""

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self.errors:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        self.transport.write(HEALTHY if self.url == b"/healthz" else ANSWER)


def serve_protocol(port: int) -> None:
    import uvloop

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(TrivialProtocol, "127.0.0.1", port, backlog=2048)
        await server.serve_forever()

    uvloop.install()
    asyncio.run(serve())


def serve_rsgi(port: int) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    server = Server(TrivialRSGI(), address="127.0.0.1", port=port, interface=Interfaces.RSGI, log_enabled=False)
    asyncio.run(server.serve())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--serve-rsgi", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-protocol", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_rsgi:
        serve_rsgi(args.serve_rsgi)
        return
    if args.serve_protocol:
        serve_protocol(args.serve_protocol)
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
        for flag, name in (("--serve-rsgi", "granian embedded, RSGI"), ("--serve-protocol", "httptools Protocol, no ASGI")):
            port = free_port()
            process = start_process([sys.executable, __file__, flag, str(port)], port)
            measure(name, process, port)


if __name__ == "__main__":
    main()
