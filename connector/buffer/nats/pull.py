"""One sink's JetStream pull consumer, fetched over a core subscription of the buffer's own.

The pull protocol is JetStream's documented one (NATS docs, "Get Next Message"; ADR-13): a
request on ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`` with ``{"batch", "expires"}`` and a
reply subject; the server sends up to ``batch`` messages there as they become available and, if
it had fewer when the request ends, a status message: 408 (expired), 409 (the request was refused
or ended: leadership change, consumer deleted, max ack pending), 404 (no messages, ``no_wait``,
which is not asked for here). 100 is a heartbeat, not asked for either.

nats-py's ``fetch`` gathers a batch with ``Subscription.next_msg``, two tasks and a uuid4 a
message: most of the delivery side's CPU in NATS mode. Here messages land in a deque from the
subscription's callback, and a read takes what is there, or sends one request (if none is open)
and waits for the first message. A request left open after a read keeps bringing messages into
the deque (``batch`` at most outstanding, or twice that when the event loop ran so late that a
request was taken as ended while the server still answered it); the buffer counts them as held
(their ack deadline extended, nak'ed on close). Each request replies to a subject of its own, so a late
status of an ended request is not taken for the current one's (records come with their stream
subject: they are counted against the open request, the only one).
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from typing import Any

STATUS = "Status"
HEARTBEAT = "100"
EXPIRED = "408"
MARGIN_SECONDS = 0.25  # a request the server has not ended by its expiry + this is taken as ended


class PullConsumer:
    """Reads a durable pull consumer's messages, ``fetch`` at a time."""

    def __init__(self, nc: Any, stream: str, durable: str):
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._sub: Any = None
        self.arrived: collections.deque[Any] = collections.deque()  # delivered to us, not yet read
        self._woken = asyncio.Event()
        self._requests = 0
        self._open: str | None = None  # the reply subject of the open request
        self._open_until = 0.0  # monotonic
        self._owed = 0  # messages the open request may still bring
        self.refusal: str | None = None  # the last request's ending status other than expiry, if any

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox + ".*", cb=self._on_message)

    async def stop(self) -> None:
        """Stop taking messages (those in ``arrived`` stay there, to be nak'ed by the owner)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()
        self._open = None

    async def fetch(self, limit: int, timeout: float) -> list[Any]:
        """Up to ``limit`` messages: those already arrived, else the first that arrive within
        ``timeout`` (with those arriving alongside); [] if none came."""
        if self._sub is None:  # stopped: it hands out nothing more
            await asyncio.sleep(timeout)
            return []
        if not self.arrived:
            self._woken.clear()  # before asking: what arrives meanwhile wakes the wait below
            if self._open is None or time.monotonic() > self._open_until:
                await self._ask(limit, timeout)
            try:
                async with asyncio.timeout(max(self._open_until - time.monotonic(), 0.0)):
                    await self._woken.wait()
            except TimeoutError:
                self._open = None
            if not self.arrived and self.refusal is not None:
                await asyncio.sleep(max(self._open_until - time.monotonic(), 0.0))  # not at once again
        arrived = self.arrived
        return [arrived.popleft() for _ in range(min(limit, len(arrived)))]

    async def _ask(self, batch: int, expires: float) -> None:
        self._requests += 1
        self._open = f"{self._inbox}.{self._requests}"
        self._open_until = time.monotonic() + expires + MARGIN_SECONDS
        self._owed = batch
        self.refusal = None
        request = json.dumps({"batch": batch, "expires": int(expires * 1e9)}).encode()
        await self._nc.publish(self._next_subject, request, reply=self._open)

    async def _on_message(self, msg: Any) -> None:
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is None:  # a record (its subject is the stream's), brought by the open request
            self.arrived.append(msg)
            if self._open is not None:
                self._owed -= 1
                if self._owed <= 0:
                    self._open = None
            self._woken.set()
            return
        if status == HEARTBEAT or msg.subject != self._open:
            return  # a heartbeat, or the end of a request already over
        self._open = None
        if status != EXPIRED:
            self.refusal = f"{status} {msg.headers.get('Description', '')}".strip()
        self._woken.set()


def stream_sequence(reply: str) -> int:
    """A delivered message's sequence in its stream, read from its ack subject: ``$JS.ACK.<stream>.
    <consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>``, or with ``<domain>.<account
    hash>`` before the stream and a token after (ADR-15; what nats-py's ``Msg.metadata`` reads, without
    building it)."""
    tokens = reply.split(".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])
