"""CPU a request of connector's own ingest code, without HTTP: ``WebhookApp`` called directly (64
concurrent callers) with signed Jebbit deliveries, storing into a real sqlite buffer. With the
whole ingest process's CPU a delivery (``whole_path.py``), it splits that cost between the HTTP
layer and connector's code. ``--protocol`` sends the raw requests through the ingress's HTTP layer (``httpserver.py``'s
Protocol over an in-memory transport: parsing and answering included, sockets not), so the
difference between the two is the HTTP layer's own cost. ``--profile`` adds cProfile's top
functions (which slows it ~3x).

    python ingress_cpu.py [--requests 20000] [--protocol] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import tempfile
import time

import uvloop

from connector.buffer.sqlite import SqliteBuffer
from connector.config import ServerConfig
from connector.ingress.httpserver import Connection, HTTPServer
from connector.ingress.intake import Intake
from connector.ingress.webhooks import WebhookApp
from connector.tap import TapHub
from connector.testing.kit import build_context
from connector_jebbit.signature import sign
from connector_jebbit.source import JebbitSourceConfig

SECRET = "bench-shared-secret"
CALLERS = 64


def deliveries(count: int) -> list[tuple[bytes, bytes]]:
    signed = []
    for i in range(count):
        body = json.dumps([{"data": {
            "email": f"user{i}@example.com", "session_id": f"s{i}", "campaign_id": "n3zrik6g",
            "campaign_name": "New Quiz", "channel": "Owned+Web", "experience_date": "2026-11-24 10:00:00",
            "opt_in": "true", "favorite_color": "blue", "age_group": "25-34"}, "event": {"event_number": 0}}],
            separators=(",", ":")).encode()
        signed.append((body, sign(SECRET, body).encode()))
    return signed


class MemoryTransport(asyncio.Transport):
    """What a Connection writes, counted by answers; one waiter is woken per answer."""

    def __init__(self) -> None:
        super().__init__()
        self.answers = 0
        self.statuses: list[bytes] = []
        self.answered = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.statuses.append(data[9:12])
        self.answers += 1
        self.answered.set()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def run_protocol(app: WebhookApp, signed: list[tuple[bytes, bytes]]) -> list[int]:
    """Each of ``CALLERS`` connections sends its requests one after another, as wrk does."""
    server = HTTPServer(app, None, whole_body=app)  # type: ignore[arg-type]

    async def caller(first: int) -> list[int]:
        transport = MemoryTransport()
        connection = Connection(server)
        connection.connection_made(transport)
        for body, signature in signed[first::CALLERS]:
            transport.answered.clear()
            connection.data_received(b"POST /webhooks/jebbit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     b"Content-Type: application/json\r\nx-jebbit-signature: %s\r\n"
                                     b"Content-Length: %d\r\n\r\n%s" % (signature, len(body), body))
            await transport.answered.wait()
        return [int(status) for status in transport.statuses]

    return [status for statuses in await asyncio.gather(*(caller(k) for k in range(CALLERS))) for status in statuses]


async def run(signed: list[tuple[bytes, bytes]], protocol: bool, profile: bool) -> None:
    buffer = SqliteBuffer(tempfile.mkdtemp(prefix="connector-bench-") + "/b.db")
    await buffer.open([])
    source = JebbitSourceConfig(shared_secret=SECRET).build(build_context("jebbit"))
    source.name = "jebbit"
    app = WebhookApp([source], Intake(buffer, TapHub()), ServerConfig())
    statuses: list[int] = []

    async def send(message: dict) -> None:
        if "status" in message:
            statuses.append(message["status"])

    async def caller(first: int) -> None:
        for body, signature in signed[first::CALLERS]:
            scope = {"type": "http", "path": "/webhooks/jebbit", "method": "POST",
                     "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                                 (b"x-jebbit-signature", signature), (b"content-length", str(len(body)).encode())]}

            async def receive(body: bytes = body) -> dict:
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, receive, send)

    profiler = cProfile.Profile() if profile else None
    cpu, main_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    if protocol:
        statuses = await run_protocol(app, signed)
    else:
        await asyncio.gather(*(caller(k) for k in range(CALLERS)))
    if profiler:
        profiler.disable()
    cpu, main_cpu, wall = time.process_time() - cpu, time.thread_time() - main_cpu, time.perf_counter() - wall
    await buffer.close()
    assert set(statuses) == {200}, set(statuses)
    print(f"{len(signed):,} requests: {cpu / len(signed) * 1e6:.1f} µs CPU a request (all threads; "
          f"the event loop's thread {main_cpu / len(signed) * 1e6:.1f}), "
          f"{len(signed) / wall:,.0f} requests/s, {'HTTP in memory' if protocol else 'no HTTP'}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--protocol", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    uvloop.install()
    asyncio.run(run(deliveries(args.requests), args.protocol, args.profile))


if __name__ == "__main__":
    main()
