"""Live taps: what a component emits, streamed to observers without disturbing delivery.

A subscriber gets a bounded stream; when it cannot keep up, lines are dropped for it (and
counted), never held back from delivery. Publishing costs one attribute check while nobody taps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import anyio
import anyio.abc
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
        self._subscribers: dict[str | None, set[anyio.abc.ObjectSendStream[bytes]]] = {}

    @contextlib.contextmanager
    def subscribe(self, component: str | None) -> Iterator[anyio.abc.ObjectReceiveStream[bytes]]:
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
