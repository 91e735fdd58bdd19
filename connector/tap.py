"""Live taps: what a component emits, streamed to observers without disturbing delivery.

A subscriber gets a bounded stream; when it cannot keep up, lines are dropped for it (and
counted), never held back from delivery. Publishing costs one attribute check while nobody taps.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
import msgspec

from . import metrics

SUBSCRIBER_CAPACITY = 1000
_encoder = msgspec.json.Encoder()


class TapLine(msgspec.Struct):
    """One tapped item: the component, its id, and the record or message."""

    component: str
    id: str
    data: Any


class TapHub:
    """Subscribers per component (``None``: every component)."""

    def __init__(self) -> None:
        self.active = False
        self._subscribers: dict[str | None, set[MemoryObjectSendStream[bytes]]] = {}

    @contextlib.contextmanager
    def subscribe(self, component: str | None) -> Iterator[MemoryObjectReceiveStream[bytes]]:
        """A stream of NDJSON lines for ``component`` (or all), until the block ends."""
        send, receive = anyio.create_memory_object_stream[bytes](SUBSCRIBER_CAPACITY)
        self._subscribers.setdefault(component, set()).add(send)
        self.active = True
        try:
            yield receive
        finally:
            self._subscribers[component].discard(send)
            self.active = any(self._subscribers.values())
            send.close()
            receive.close()

    def publish(self, component: str, items: Iterable[tuple[str, Any]]) -> None:
        """Offer ``(id, data)`` items emitted by ``component`` to its subscribers."""
        targets = [*self._subscribers.get(component, ()), *self._subscribers.get(None, ())]
        if not targets:
            return
        for item_id, data in items:
            line = _encoder.encode(TapLine(component, item_id, data)) + b"\n"
            for target in targets:
                try:
                    target.send_nowait(line)
                except anyio.WouldBlock:
                    metrics.TAP_DROPPED.inc()

    def close(self) -> None:
        """End every subscription (the daemon is stopping)."""
        for streams in self._subscribers.values():
            for stream in streams:
                stream.close()


def tap_component(scope: dict[str, Any]) -> str | None:
    """The ``?component=NAME`` of a tap request (None: every component)."""
    query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
    components = query.get("component")
    return components[0] if components else None


async def stream_tap(receive: Callable[[], Awaitable[dict[str, Any]]], send: Callable[[dict[str, Any]], Awaitable[None]],
                     taps: TapHub, component: str | None, other_process: AsyncIterator[bytes] | None) -> None:
    """Answer an ASGI request with NDJSON lines of what ``component`` emits here (and, when
    given, in another process), until the client goes away or the taps close."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson")]})
    sending = anyio.Lock()

    async def forward(lines: AsyncIterator[bytes]) -> None:
        async for line in lines:
            async with sending:
                await send({"type": "http.response.body", "body": line, "more_body": True})

    async def cancel_on_disconnect(scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    try:
        with taps.subscribe(component) as lines:
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_on_disconnect, tg.cancel_scope)
                await send({"type": "http.response.body", "body": b"", "more_body": True})
                if other_process is not None:
                    tg.start_soon(forward, other_process)
                await forward(lines)
                tg.cancel_scope.cancel()
        await send({"type": "http.response.body", "body": b""})
    except OSError:  # the tap client went away
        pass
