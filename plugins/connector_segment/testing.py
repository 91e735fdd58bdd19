"""``FakeSegment``: Segment's HTTP Tracking API ``/v1/batch`` on 127.0.0.1, for tests (a pytest plugin).

It records what arrives, checks the write key (basic auth) and what Segment documents as its
limits and required fields (``violations``), and fails by script. Fixture ``fake_segment``: a
started fake (write key ``test-write-key``), stopped after the test.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import gzip
import random
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from connector.testing import ThreadedServer


class FakeSegment(ThreadedServer):
    """Segment's batch endpoint on 127.0.0.1, in a thread.

    ``fail(status)`` answers every request with ``status`` until ``heal()``. ``script`` is
    consumed one entry per request: an HTTP status (``500``), ``(429, seconds)``
    for a 429 with Retry-After, or ``"timeout"`` (answer after ``slow_seconds``, recording
    nothing). ``chaos(rate, seconds)`` fails that share of requests at random, for that long. ``poison`` makes any batch holding that text answer 400, as Segment does for an
    invalid message. ``batches`` and ``messages`` hold what was accepted; ``violations`` lists
    any batch over 500 KB or 2,500 messages, and any message over 32 KB or without what Segment
    requires (a known type, its type's field, a userId or anonymousId, a messageId).
    """

    MAX_BATCH_BYTES = 500 * 1000
    MAX_BATCH_MESSAGES = 2500
    MAX_MESSAGE_BYTES = 32 * 1000
    REQUIRED_BY_TYPE = {"identify": None, "track": "event", "page": None, "screen": None, "group": "groupId",
                        "alias": "previousId"}

    def __init__(self, write_key: str = "test-write-key", port: int | None = None):
        super().__init__(self._app, port)
        self.write_key = write_key
        self.script: collections.deque[Any] = collections.deque()
        self.poison: str | None = None
        self.slow_seconds = 3.0
        self.batches: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.violations: list[str] = []
        self.injected: collections.Counter[str] = collections.Counter()
        self._chaos: tuple[float, float] | None = None
        self.failing: int | None = None

    def chaos(self, rate: float, seconds: float) -> None:
        """Fail ``rate`` of the requests of the next ``seconds`` with 500, 503, 429 or a timeout."""
        self._chaos = (rate, time.monotonic() + seconds)

    def fail(self, status: int) -> None:
        """Answer every request with ``status`` until ``heal()``."""
        self.failing = status

    def heal(self) -> None:
        self.failing = None

    def _next_action(self) -> Any:
        if self.failing is not None:
            return self.failing
        if self.script:
            return self.script.popleft()
        if self._chaos is not None and time.monotonic() < self._chaos[1] and random.random() < self._chaos[0]:
            action = random.choice([500, 503, (429, 1), "timeout"])
            self.injected[str(action)] += 1
            return action
        return None

    def message_ids(self) -> set[str]:
        return {m["messageId"] for m in self.messages}

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the connection was reset mid-request: nothing arrived
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(headers)
        action = self._next_action()
        status, answer, extra = self._answer(scope["path"], headers, body, action)
        if action == "timeout":
            await asyncio.sleep(self.slow_seconds)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *extra]})
        await send({"type": "http.response.body", "body": msgspec.json.encode(answer)})

    def _answer(self, path: str, headers: dict[str, str], body: bytes,
                action: Any) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        if path != "/v1/batch":
            return 404, {"error": "not found"}, []
        expected = "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()
        if headers.get("authorization") != expected:
            return 401, {"error": "invalid write key"}, []
        if isinstance(action, int):
            return action, {"error": "scripted failure"}, []
        if isinstance(action, tuple):
            return action[0], {"error": "rate limited"}, [(b"retry-after", str(action[1]).encode())]
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if len(body) > self.MAX_BATCH_BYTES:
            self.violations.append(f"batch of {len(body)} bytes")
        payload = msgspec.json.decode(body)
        batch = payload.get("batch", [])
        if len(batch) > self.MAX_BATCH_MESSAGES:
            self.violations.append(f"batch of {len(batch)} messages")
        for message in batch:
            self.violations.extend(self._check(message))
        if self.poison is not None and self.poison.encode() in body:
            return 400, {"error": "invalid message"}, []
        if action == "timeout":
            return 200, {"success": True}, []
        self.batches.append(payload)
        self.messages.extend(batch)
        return 200, {"success": True}, []


    def _check(self, message: Any) -> list[str]:
        """What Segment's Tracking API documents as required of a message, that it lacks."""
        if not isinstance(message, dict):
            return [f"a message that is not an object: {message!r:.80}"]
        where = f"message {message.get('messageId')}"
        problems = []
        if len(msgspec.json.encode(message)) > self.MAX_MESSAGE_BYTES:
            problems.append(f"{where} over 32 KB")
        if message.get("type") not in self.REQUIRED_BY_TYPE:
            problems.append(f"{where} has type {message.get('type')!r}")
        elif (field := self.REQUIRED_BY_TYPE[message["type"]]) and not message.get(field):
            problems.append(f"{where} ({message['type']}) has no {field}")
        if not message.get("userId") and not message.get("anonymousId"):
            problems.append(f"{where} has neither userId nor anonymousId")
        if not message.get("messageId"):
            problems.append("a message without messageId")
        return problems


@pytest.fixture
def fake_segment() -> Iterator[FakeSegment]:
    """A started ``FakeSegment`` (write key ``test-write-key``), stopped after the test."""
    fake = FakeSegment().start()
    yield fake
    fake.stop()
