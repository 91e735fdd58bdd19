"""The ``segment`` sink: batches to ``POST /v1/batch``, several in flight, retried until answered.

Only batches Segment answered 2xx are acknowledged. A ``Retry-After`` on 429, 408 or 5xx holds
the whole sink that long (0 or a past date: the sink's own backoff); without one, these,
timeouts and connection errors back off with full jitter; 400 (or 413) on a batch is
bisected until the refused messages are found, and only those are dead-lettered; 401/403 (or
another 4xx: a wrong endpoint) pauses the sink, keeps everything and probes again with backoff.

Posts go through aiohttp (an httpx POST cost ~6 % more of a delivery's instructions, measured
with ``bench/delivery_cpu.py`` under callgrind); ``timeout`` bounds a whole request.
"""

from __future__ import annotations

import base64
import enum
import time
from typing import Any, Protocol

import aiohttp
import anyio
from isal import igzip

import connector

from .messages import BATCH_OVERHEAD, LIBRARY, MAX_MESSAGE_BYTES, NotAMessage, batch_body, encode_message


class SinkSettings(Protocol):
    """The settings the sink runs on (``SegmentSinkConfig`` documents each)."""

    @property
    def url(self) -> str: ...

    write_key: str
    gzip: bool
    batch_max_messages: int
    batch_max_bytes: int
    flush_interval: float
    max_in_flight: int
    timeout: float
    retry_initial_seconds: float
    retry_max_seconds: float
    retry_after_max_seconds: float
    max_retry_duration: float | None


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    REFUSED = "refused"  # the batch holds a message Segment will never take
    PAUSE = "pause"  # the sink as a whole is misconfigured (credentials, endpoint)
    RETRY = "retry"


class SegmentSink(connector.Sink):
    """Delivers envelopes to Segment's HTTP Tracking API."""

    def __init__(self, config: SinkSettings, log: Any, metrics: connector.ComponentMetrics):
        self.config = config
        self.log = log
        self.metrics = metrics
        self.url = config.url
        token = base64.b64encode(f"{config.write_key}:".encode()).decode()
        self.headers = {"authorization": f"Basic {token}", "content-type": "application/json",
                        "user-agent": f"connector/{LIBRARY['version']}"}
        if config.gzip:
            self.headers["content-encoding"] = "gzip"
        self._hold_until = 0.0
        self._carry: tuple[connector.Envelope, bytes] | None = None

    async def run(self, inbox: connector.Inbox, acks: connector.Acks) -> None:
        slots = anyio.Semaphore(self.config.max_in_flight)
        connections = aiohttp.TCPConnector(limit=self.config.max_in_flight)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(connector=connections, timeout=timeout, auto_decompress=False,
                                         skip_auto_headers=("accept-encoding",)) as client:
            async with anyio.create_task_group() as tg:
                while True:
                    batch = await self._collect(inbox, acks)
                    if batch is None:
                        break
                    if batch[0]:
                        await slots.acquire()
                        tg.start_soon(self._send, client, acks, slots, *batch)

    # batching --------------------------------------------------------------------------------
    async def _collect(self, inbox: connector.Inbox,
                       acks: connector.Acks) -> tuple[list[connector.Envelope], list[bytes]] | None:
        """The next batch, closed by count, size or ``flush_interval``; None once the inbox ends."""
        envelopes: list[connector.Envelope] = []
        messages: list[bytes] = []
        size = BATCH_OVERHEAD
        deadline = None
        if self._carry is not None:
            carried, message = self._carry
            self._carry = None
            envelopes.append(carried)
            messages.append(message)
            size += len(message)
            deadline = time.monotonic() + self.config.flush_interval
        while len(envelopes) < self.config.batch_max_messages:
            envelope: connector.Envelope | None
            try:  # what is already there, without a coroutine call a message
                envelope = inbox.receive_nowait()
            except anyio.WouldBlock:
                envelope = await self._wait_next(inbox, deadline)
            except anyio.EndOfStream:
                envelope = None
            if envelope is None:
                return (envelopes, messages) if envelopes or deadline is not None else None
            if deadline is None:
                deadline = time.monotonic() + self.config.flush_interval
            message, refusal = self._encode(envelope)
            if refusal is not None:
                await acks.dead_letter(envelope, refusal)
                continue
            if size + len(message) + 1 > self.config.batch_max_bytes:
                self._carry = (envelope, message)
                break
            envelopes.append(envelope)
            messages.append(message)
            size += len(message) + 1
        return envelopes, messages

    @staticmethod
    async def _wait_next(inbox: connector.Inbox,
                         deadline: float | None) -> connector.Envelope | None:
        """The next envelope to come; None at the deadline or once the inbox is closed."""
        try:
            if deadline is None:
                return await inbox.receive()
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                return await inbox.receive()
            return None
        except anyio.EndOfStream:
            return None

    @staticmethod
    def _encode(envelope: connector.Envelope) -> tuple[bytes, str | None]:
        """The message as Segment gets it, or why it is dead-lettered instead."""
        try:
            message = encode_message(envelope)
        except NotAMessage as exc:
            return b"", str(exc)
        except (TypeError, ValueError, OverflowError) as exc:  # what msgspec cannot encode
            return b"", f"cannot encode the message as JSON: {exc}"
        if len(message) > MAX_MESSAGE_BYTES:
            return b"", f"message is {len(message)} bytes; Segment takes at most {MAX_MESSAGE_BYTES} bytes a message"
        return message, None

    # delivery --------------------------------------------------------------------------------
    async def _send(self, client: aiohttp.ClientSession, acks: connector.Acks, slots: anyio.Semaphore,
                    envelopes: list[connector.Envelope], messages: list[bytes]) -> None:
        try:
            await self._deliver(client, acks, envelopes, messages)
        finally:
            slots.release()

    async def _deliver(self, client: aiohttp.ClientSession, acks: connector.Acks,
                       envelopes: list[connector.Envelope], messages: list[bytes]) -> None:
        attempt = 0
        failing_since: float | None = None
        while True:
            await self._wait_for_hold()
            outcome, detail, retry_after = await self._post(client, messages, attempt)
            if outcome is Outcome.DELIVERED:
                acks.resume()
                await acks.ack(envelopes)
                return
            if outcome is Outcome.REFUSED:
                acks.resume()
                await self._isolate(client, acks, envelopes, messages, detail, attempt + 1)
                return
            if outcome is Outcome.PAUSE:
                acks.pause(f"Segment refused the requests ({detail}); check write_key and endpoint")
            else:
                failing_since = failing_since or time.monotonic()
                limit = self.config.max_retry_duration
                if limit is not None and time.monotonic() - failing_since > limit:
                    for envelope in envelopes:
                        await acks.dead_letter(envelope, f"gave up after {attempt + 1} attempts over {limit} s: "
                                                         f"{detail}", attempt + 1)
                    return
            acks.error(detail, "retry")
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            if retry_after is not None:
                self._hold_until = max(self._hold_until, time.monotonic() + delay)
            self.log.warning("retrying batch", reason=detail, attempt=attempt + 1, delay_seconds=round(delay, 3),
                             messages=len(messages))
            attempt += 1
            await anyio.sleep(delay)

    async def _isolate(self, client: aiohttp.ClientSession, acks: connector.Acks, envelopes: list[connector.Envelope],
                       messages: list[bytes], detail: str, attempts: int) -> None:
        """Bisect a refused batch: deliver the good halves, dead-letter the refused messages."""
        if len(envelopes) == 1:
            await acks.dead_letter(envelopes[0], f"Segment refused the message: {detail}", attempts)
            return
        middle = len(envelopes) // 2
        await self._deliver(client, acks, envelopes[:middle], messages[:middle])
        await self._deliver(client, acks, envelopes[middle:], messages[middle:])

    async def _post(self, client: aiohttp.ClientSession, messages: list[bytes],
                    attempt: int) -> tuple[Outcome, str, float | None]:
        body = batch_body(messages)
        if self.config.gzip:  # ISA-L: ~0.4 µs a message (zlib's level 1 took 2.5), so on the loop
            body = igzip.compress(body, 1)
        headers = self.headers if attempt == 0 else {**self.headers, "x-retry-count": str(attempt)}
        started = time.perf_counter()
        try:
            async with client.post(self.url, data=body, headers=headers) as response:
                status = response.status
                answer = await response.read()
                retry_after = response.headers.get("retry-after")
        except TimeoutError:
            return Outcome.RETRY, "timeout", None
        except aiohttp.ClientError as exc:
            return Outcome.RETRY, f"connection error ({type(exc).__name__})", None
        finally:
            self.metrics.observe_request(time.perf_counter() - started)
        if status < 300:
            return Outcome.DELIVERED, "", None
        detail = f"HTTP {status}: {answer[:200].decode('utf-8', 'replace')}"
        if status in (400, 413):
            return Outcome.REFUSED, detail, None
        if status == 429 or status == 408 or status >= 500:
            return Outcome.RETRY, detail, connector.retry_after_seconds(retry_after, self.config.retry_after_max_seconds)
        return Outcome.PAUSE, f"HTTP {status}", None

    def _backoff(self, attempt: int) -> float:
        return connector.full_jitter(attempt, self.config.retry_initial_seconds, self.config.retry_max_seconds)

    async def _wait_for_hold(self) -> None:
        wait = self._hold_until - time.monotonic()
        if wait > 0:
            await anyio.sleep(wait)
