"""Take envelopes off a sink's inbox in batches: wait for one, then take what is ready."""

from __future__ import annotations

from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

T = TypeVar("T")


async def next_batch(inbox: MemoryObjectReceiveStream[T], max_items: int) -> list[T]:
    """Wait for the next item, then add what is already queued, up to ``max_items``.

    Returns [] once the inbox is closed and empty.
    """
    try:
        batch = [await inbox.receive()]
    except anyio.EndOfStream:
        return []
    while len(batch) < max_items:
        try:
            batch.append(inbox.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return batch
