"""The ``memory`` buffer: for tests and trials. Explicitly not durable: a restart loses it."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import ClassVar

from ..errors import BufferFull
from ..records import DeadLetter, Record
from .base import Buffer, BufferConfig, CursorTracker, NewRecord, now


class MemoryBufferConfig(BufferConfig, tag="memory", frozen=True):
    """``type = "memory"``: ``max_records`` bounds what is held (then webhooks get 503)."""

    max_records: int = 100_000

    def build(self, config_dir: str, appended_elsewhere: bool = False) -> Buffer:
        return MemoryBuffer(self.max_records)


class MemoryBuffer(Buffer):
    """Records in a list ordered by seq, dropped once every sink passed them."""

    durable: ClassVar[bool] = False

    def __init__(self, max_records: int):
        super().__init__()
        self.max_records = max_records
        self._records: list[Record] = []
        self._seqs: list[int] = []
        self._next_seq = 1
        self._cursors: dict[str, CursorTracker] = {}
        self._dead: dict[int, DeadLetter] = {}
        self._next_dead = 1
        self._checkpoints: dict[str, bytes] = {}

    async def open(self, sinks: Sequence[str]) -> None:
        self._cursors = {sink: CursorTracker(0) for sink in sinks}

    async def close(self) -> None:
        self.notify()

    async def has_room(self) -> bool:
        return len(self._records) < self.max_records

    async def append(self, records: Sequence[NewRecord], checkpoint: tuple[str, bytes] | None = None) -> None:
        if len(self._records) + len(records) > self.max_records:
            raise BufferFull(f"the memory buffer holds its limit of {self.max_records} records")
        for new in records:
            seq = self._next_seq
            self._next_seq += 1
            self._records.append(Record(seq, new.id, new.source, new.received_at, new.body, new.only_sink))
            self._seqs.append(seq)
            self.stored_bytes += len(new.body)
        if checkpoint is not None:
            self._checkpoints[checkpoint[0]] = checkpoint[1]
        self.notify()

    async def rewind(self, sink: str) -> None:
        self._cursors[sink].rewind()

    async def checkpoint(self, name: str) -> bytes | None:
        return self._checkpoints.get(name)

    async def read(self, sink: str, limit: int) -> list[Record]:
        cursor = self._cursors[sink]
        start = bisect.bisect_right(self._seqs, cursor.read_position)
        batch = self._records[start : start + limit]
        cursor.handed_out([r.seq for r in batch])
        return batch

    async def ack(self, sink: str, seqs: Sequence[int]) -> None:
        if self._cursors[sink].acked(seqs):
            self._trim()

    async def dead_letter(self, sink: str, record: Record, reason: str, attempts: int) -> None:
        self._dead[self._next_dead] = DeadLetter(
            self._next_dead, sink, record.id, record.source, record.received_at, record.body,
            reason, attempts, now(),
        )
        self._next_dead += 1

    def _trim(self) -> None:
        floor = min(c.committed for c in self._cursors.values())
        cut = bisect.bisect_right(self._seqs, floor)
        if cut >= min(1024, len(self._seqs)) and cut:
            self.stored_bytes -= sum(len(r.body) for r in self._records[:cut])
            del self._records[:cut]
            del self._seqs[:cut]

    async def dead_letters(self, ids: Sequence[int] = ()) -> list[DeadLetter]:
        return [d for i, d in sorted(self._dead.items()) if not ids or i in ids]

    async def replay(self, ids: Sequence[int] = ()) -> int:
        chosen = await self.dead_letters(ids)
        await self.append([NewRecord(d.record_id, d.source, d.received_at, d.body, d.sink) for d in chosen])
        for d in chosen:
            del self._dead[d.id]
        return len(chosen)

    async def purge(self, ids: Sequence[int] = ()) -> int:
        chosen = await self.dead_letters(ids)
        for d in chosen:
            del self._dead[d.id]
        return len(chosen)

    async def oldest_pending(self, sinks: Sequence[str]) -> dict[str, float]:
        oldest = {}
        for sink in sinks:
            cursor = self._cursors[sink]
            first = bisect.bisect_right(self._seqs, cursor.committed)
            waiting = (r for r in itertools.islice(self._records, first, None) if r.only_sink in (None, sink))
            if (record := next(waiting, None)) is not None:
                oldest[sink] = record.received_at
        return oldest

    def lag(self) -> dict[str, int]:
        return {
            sink: len(self._seqs) - bisect.bisect_right(self._seqs, c.committed)
            for sink, c in self._cursors.items()
        }
