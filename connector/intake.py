"""Intake: turns what sources accepted into stored records with deterministic ids."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from . import ids, metrics
from .buffer import Buffer, NewRecord
from .tap import TapHub


def checkpoint_name(source: str) -> str:
    """The buffer checkpoint that holds a polling source's position."""
    return f"source:{source}"


class Intake:
    """The sources' one way into the buffer; refuses new input once the daemon is stopping."""

    def __init__(self, buffer: Buffer, taps: TapHub):
        self.buffer = buffer
        self.taps = taps
        self.stopping = False
        self.paused: dict[str, str] = {}  # polling sources that cannot fetch, with the reason
        self.received: dict[str, int] = {}  # records stored, by source, since this process started
        self._received: dict[str, Any] = {}

    async def store(self, source: str, records: Sequence[Any], checkpoint: bytes | None = None) -> None:
        """Encode ``records`` canonically, give them ids, and return once the buffer stored them.

        A polling source's ``checkpoint`` is stored in the same transaction.
        """
        if not records and checkpoint is None:
            return
        received_at = time.time()
        new = []
        for record in records:
            body = ids.canonical(record)
            new.append(NewRecord(ids.record_id(source, body), source, received_at, body))
        await self.buffer.append(new, None if checkpoint is None else (checkpoint_name(source), checkpoint))
        if self.taps.active:
            self.taps.publish(source, ((r.id, msgspec.Raw(r.body)) for r in new))
        counter = self._received.get(source)
        if counter is None:
            counter = self._received[source] = metrics.RECEIVED.labels(source)
        counter.inc(len(new))
        self.received[source] = self.received.get(source, 0) + len(new)
