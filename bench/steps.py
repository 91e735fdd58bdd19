"""The cost of each step of one delivery, each timed alone on one thread (µs, the best of five
runs of many calls): what issue 18's per-step table is made of. Under the whole path's load the
same steps cost more (caches shared with wrk and the other process; ``split.py`` gives the
totals by process), so compare steps with each other, not with ``split.py``.

    python steps.py

Ingest: the HTTP layer (httptools, scope, answer rendering, with a transport that discards what
is written), the ingress checks, the signature, the body's decoding, the canonical encoding and
record id, the answer; the kernel's loopback send and receive of one request and its answer; one
row's share of a 30-row SQLite commit with ``synchronous=FULL``. Delivery: one record's share of a
read as large as a delivery process makes, the mapping, the message ids and envelopes, the two messages' encoding, one
delivery's share of a 500-message batch body and its gzip.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import tempfile
import time
import timeit
from collections.abc import Callable
from typing import Any

from isal import igzip

from connector import Envelope, Record
from connector.buffer import NewRecord
from connector.buffer.sqlite import SqliteBuffer
from connector.buffer.sqlite.schema import migrate
from connector.buffer.sqlite.writer import insert_rows
from connector.config import ServerConfig
from connector.ingress.httpserver import Connection, HTTPServer
from connector.ids import canonical, message_id, record_id
from connector.ingress.intake import Intake
from connector.delivery.pipeline import READ_BATCH_ALONE
from connector.ingress.webhooks import WebhookApp
from connector.tap import TapHub
from connector.testing.kit import build_context
from connector_jebbit.mapper import JebbitToSegment, JebbitToSegmentConfig
from connector_jebbit.schema import delivery_items
from connector_jebbit.signature import sign
from connector_jebbit.source import JebbitSourceConfig
from connector_segment.messages import batch_body, encode_message

SECRET = "bench-shared-secret"
BODY = json.dumps([{"data": {
    "email": "user1@example.com", "session_id": "s1", "campaign_id": "n3zrik6g", "campaign_name": "New Quiz",
    "channel": "Owned+Web", "experience_date": "2026-11-24 10:00:00", "opt_in": "true",
    "favorite_color": "blue", "age_group": "25-34"}, "event": {"event_number": 0}}], separators=(",", ":")).encode()


def best(fn: Callable[[], Any], number: int = 20_000, per: int = 1) -> float:
    """µs a call of ``fn`` (divided by ``per``), the best of five runs."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number / per * 1e6


class Discard(asyncio.Transport):
    def write(self, data: bytes) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


class AnswerAtOnce:
    """A ``WholeBody`` that answers 200 on the spot: the HTTP layer alone."""

    def takes(self, path: str) -> bool:
        return True

    def answer(self, scope: dict[str, Any], body: bytes, reply: Callable[..., None]) -> None:
        reply((200, ((b"content-type", b"application/json"), (b"content-length", b"14")), b'{"accepted":1}'))


def ingest_steps(app: WebhookApp, source: Any) -> list[tuple[str, float]]:
    signature = sign(SECRET, BODY, int(time.time()) + 3600)  # still in time while this runs
    request = (b"POST /webhooks/jebbit HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n"
               b"x-jebbit-signature: %s\r\nContent-Length: %d\r\n\r\n%s" % (signature.encode(), len(BODY), BODY))
    connection = Connection(HTTPServer(None, None, whole_body=AnswerAtOnce()))  # type: ignore[arg-type]
    connection.connection_made(Discard())
    scope = {"method": "POST", "path": "/webhooks/jebbit",
             "headers": [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"),
                         (b"x-jebbit-signature", signature.encode()), (b"content-length", b"%d" % len(BODY))]}
    headers = app._head(source, scope)
    items = delivery_items(BODY)
    new = Intake.prepare("jebbit", items)
    return [
        ("HTTP: parse, scope, answer rendered and written (httpserver.py)",
         best(lambda: connection.data_received(request))),
        ("ingress checks: method, sizes, media type, headers as a dict", best(lambda: app._head(source, scope))),
        ("signature: HMAC-SHA256, header, base64, compare", best(lambda: source.verifier.verify(headers[
            "x-jebbit-signature"], BODY))),
        ("body decoded (msgspec)", best(lambda: delivery_items(BODY))),
        ("canonical JSON and record id (blake2b-128)", best(lambda: Intake.prepare("jebbit", items))),
        ("stored: counted, answer body and headers", best(lambda: app._answer(source, 0.0, app._stored(source, new)))),
        ("kernel: the request and its answer over loopback TCP", loopback(request)),
        ("SQLite: one row's share of a 30-row commit (synchronous=FULL)", sqlite_row(new[0].body)),
    ]


def loopback(request: bytes) -> float:
    """CPU µs to send ``request`` and a 90-byte answer across a loopback TCP connection and read
    each on the other side (both ends in this thread: each side's share as in the whole path)."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    for end in (client, server):
        end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{\"accepted\":1}"

    def round_trip() -> None:
        client.sendall(request)
        server.recv(65536)
        server.sendall(answer)
        client.recv(65536)

    started = time.process_time()
    for _ in range(20_000):
        round_trip()
    spent = (time.process_time() - started) / 20_000 * 1e6
    for end in (client, server, listener):
        end.close()
    return spent


def sqlite_row(body: bytes) -> float:
    """CPU µs a row of 30-row commits into the sqlite buffer's own table, one statement each."""
    with tempfile.TemporaryDirectory() as directory:
        db = sqlite3.connect(os.path.join(directory, "b.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        migrate(db)
        commits = 1000
        rows = [[(f"jebbit-{c:08x}{r:024x}", "jebbit", 0.0, body, None) for r in range(30)] for c in range(commits)]
        started = time.process_time()
        for batch in rows:
            insert_rows(db, batch)
        spent = (time.process_time() - started) / (commits * 30) * 1e6
        db.close()
    return spent


def delivery_steps() -> list[tuple[str, float]]:
    body = canonical(delivery_items(BODY)[0])
    record = Record(1, record_id("jebbit", body), "jebbit", 0.0, body)
    mapper = JebbitToSegment(JebbitToSegmentConfig(inputs=["jebbit"]))
    messages = mapper.map(record)
    envelopes = [Envelope(message_id(record.id, "jebbit_segment", i), m, record, i) for i, m in enumerate(messages)]
    encoded = [encode_message(e) for e in envelopes] * 250  # a 500-message batch: 250 deliveries
    return [
        (f"read: one record's share of a {READ_BATCH_ALONE:,}-row SELECT, as Records", read_share(body)),
        ("map: identify + track (connector_jebbit.mapper)", best(lambda: mapper.map(record))),
        ("message ids and envelopes", best(lambda: [Envelope(message_id(record.id, "jebbit_segment", i), m, record, i)
                                                    for i, m in enumerate(messages)])),
        ("encode both messages (messageId, context.library, checks)",
         best(lambda: [encode_message(e) for e in envelopes])),
        ("batch body and its gzip (ISA-L level 1): a delivery's share of 500 messages",
         best(lambda: igzip.compress(batch_body(encoded), 1), number=500, per=250)),
    ]


def read_share(body: bytes) -> float:
    async def measure() -> float:
        with tempfile.TemporaryDirectory() as directory:
            buffer = SqliteBuffer(os.path.join(directory, "b.db"))
            await buffer.open(["s"])
            await buffer.append([NewRecord(f"jebbit-{i:032x}", "jebbit", 0.0, body) for i in range(READ_BATCH_ALONE)])
            spent = best(lambda: [Record(*row) for row in buffer._select(0, READ_BATCH_ALONE)], number=50,
                         per=READ_BATCH_ALONE)
            await buffer.close()
            return spent
    return asyncio.run(measure())


async def build() -> tuple[WebhookApp, Any, SqliteBuffer]:
    buffer = SqliteBuffer(tempfile.mkdtemp(prefix="connector-bench-") + "/b.db")
    await buffer.open([])
    source = JebbitSourceConfig(shared_secret=SECRET, tolerance_seconds=7200).build(build_context("jebbit"))
    source.name = "jebbit"
    return WebhookApp([source], Intake(buffer, TapHub()), ServerConfig()), source, buffer


def main() -> None:
    async def ingest() -> list[tuple[str, float]]:
        app, source, buffer = await build()
        try:
            return ingest_steps(app, source)
        finally:
            await buffer.close()

    for side, steps in (("ingest", asyncio.run(ingest())), ("delivery", delivery_steps())):
        print(f"| {side} step | µs |\n| --- | --- |")
        for name, micros in steps:
            print(f"| {name} | {micros:.2f} |")
        print(f"| sum | {sum(m for _, m in steps):.2f} |\n")


if __name__ == "__main__":
    main()
