"""The buffer interface: a durable append-only log of raw records with one cursor per sink.

Every kind (memory, sqlite, nats) implements ``Buffer``. The contract:
- ``append`` returns only once the records are stored as durably as the kind can;
- ``read`` returns records after the sink's read position, in order;
- ``ack`` marks records done for a sink; its committed cursor advances over contiguous acks;
- ``dead_letter`` keeps a record a sink refused, with the reason; the sink then acks it as done;
- ``replay`` puts dead letters back with their record ids, marked ``only_sink``: every sink
  reads them, and the pipelines of the other sinks pass over them;
- a record may be deleted once every sink has passed it.
"""

from __future__ import annotations

import abc
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import ClassVar

import anyio
import msgspec

from ..records import DeadLetter, Record


class BufferConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, tag_field="type"):
    """Base of the ``[buffer]`` table of each kind."""

    def build(self, config_dir: str, appended_elsewhere: bool = False) -> Buffer:
        """The buffer, not yet open; ``appended_elsewhere``: in a delivery process (another
        process appends, this one reads)."""
        raise NotImplementedError


class NewRecord(msgspec.Struct, frozen=True, gc=False):
    """A record on its way into the buffer (it gets its ``seq`` there)."""

    id: str
    source: str
    received_at: float
    body: bytes
    only_sink: str | None = None


class Buffer(abc.ABC):
    """A log of raw records with per-sink cursors and dead letters."""

    durable: ClassVar[bool] = True  # False: nothing is kept across a restart
    location = "memory"  # where the records are: the same for every process of one daemon's config
    max_bytes: int | None = None  # the most the records may take (None: no bound in bytes)

    def __init__(self) -> None:
        self._appended = anyio.Event()
        self.healthy = True
        self.stored_bytes = 0

    # lifecycle -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self, sinks: Sequence[str]) -> None:
        """Open storage and load the committed cursor of each sink in ``sinks``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Persist cursors and release storage."""

    async def keep_for(self, sinks: Sequence[str]) -> None:
        """Make sure what is stored from now on waits for each of ``sinks``, though none of them
        reads in this process (the main process of two, before it takes webhooks). Kinds that keep
        every record until each sink passed it need nothing; nats declares each sink's consumer."""

    def claim(self) -> None:
        """Make this process the buffer's one owner while it runs a daemon; raise ``BufferInUse``
        if another process is. A no-op for kinds meant to be shared (nats) or private (memory)."""

    # records ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def append(self, records: Sequence[NewRecord], checkpoint: tuple[str, bytes] | None = None) -> None:
        """Store ``records``; return once durable. Raise BufferFull or BufferUnavailable.

        ``checkpoint`` (name, value) is stored in the same transaction: a polling source's
        position is saved if and only if the records it fetched are.
        """

    def append_soon(self, records: Sequence[NewRecord], done: Callable[[BaseException | None], None]) -> bool:
        """Start storing ``records`` without waiting, for the ingress's answers without a task a
        request: True when ``done`` will be called on the event loop with the outcome (None once
        durable, else the error); False when this kind, or this moment (a buffer that looks
        full), needs ``append``. Raises ``BufferUnavailable`` at once when the buffer is closed."""
        return False

    async def has_room(self) -> bool:
        """Whether the buffer is below its size limit (``/readyz``); kinds without one: True."""
        return True

    @abc.abstractmethod
    async def checkpoint(self, name: str) -> bytes | None:
        """The value last stored for checkpoint ``name``, or None."""

    @abc.abstractmethod
    async def read(self, sink: str, limit: int) -> list[Record]:
        """Up to ``limit`` records after ``sink``'s read position (empty when caught up)."""

    @abc.abstractmethod
    async def ack(self, sink: str, seqs: Sequence[int]) -> None:
        """Mark ``seqs`` delivered (or skipped) for ``sink``."""

    @abc.abstractmethod
    async def rewind(self, sink: str) -> None:
        """Hand out again what ``sink`` was handed and did not acknowledge (its sink failed and
        starts over): the next ``read`` starts after its committed cursor."""

    @abc.abstractmethod
    async def dead_letter(self, sink: str, record: Record, reason: str, attempts: int) -> None:
        """Keep ``record`` as refused by ``sink`` (the caller then acks it, as for a delivered one)."""

    async def maintain(self) -> None:
        """Background upkeep while the daemon runs (cancelled when it stops); none by default."""
        await anyio.sleep_forever()

    async def wait(self, timeout: float) -> None:
        """Return when records may have been appended, or after ``timeout`` seconds."""
        with anyio.move_on_after(timeout):
            await self._appended.wait()

    def notify(self) -> None:
        """Wake every ``wait``-er (after an append, or to make readers look again)."""
        self._appended.set()
        self._appended = anyio.Event()

    # dead letters ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def dead_letters(self, ids: Sequence[int] = ()) -> list[DeadLetter]:
        """Dead letters, oldest first; only ``ids`` when given."""

    @abc.abstractmethod
    async def replay(self, ids: Sequence[int] = ()) -> int:
        """Put dead letters (all when ``ids`` is empty) back in the log for their sink only."""

    @abc.abstractmethod
    async def purge(self, ids: Sequence[int] = ()) -> int:
        """Delete dead letters (all when ``ids`` is empty); return how many."""

    # state -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def lag(self) -> dict[str, int]:
        """Per sink, how many records are stored after its committed cursor (cheap: no I/O)."""

    async def oldest_pending(self, sinks: Sequence[str]) -> dict[str, float]:
        """Per sink of ``sinks`` with records after its committed cursor, when the oldest of them
        was received (the age of its lag); a kind that cannot tell cheaply leaves sinks out."""
        return {}

    def stalls(self) -> dict[str, str]:
        """Sinks whose records wait but are not handed out, with why (nats: a stuck or paused consumer)."""
        return {}

    def free_disk_bytes(self) -> int | None:
        """Free bytes on the filesystem that holds the records (None: not on a local disk)."""
        return None


class CursorTracker:
    """A sink's positions: read (handed out) and committed (everything before it is done).

    Records are acknowledged out of order; the committed cursor advances over contiguous ones.
    """

    __slots__ = ("committed", "read_position", "_order", "_done")

    def __init__(self, committed: int):
        self.committed = committed
        self.read_position = committed
        self._order: deque[int] = deque()
        self._done: set[int] = set()

    def handed_out(self, seqs: Sequence[int]) -> None:
        if seqs:
            self._order.extend(seqs)
            self.read_position = seqs[-1]

    def rewind(self) -> None:
        """Forget what was handed out after the committed cursor: it is read again."""
        self.read_position = self.committed
        self._order.clear()
        self._done.clear()

    def acked(self, seqs: Sequence[int]) -> bool:
        """Record acks; return True when the committed cursor moved."""
        self._done.update(seqs)
        order, done, moved = self._order, self._done, False
        while order and order[0] in done:
            seq = order.popleft()
            done.discard(seq)
            self.committed = seq
            moved = True
        return moved


def now() -> float:
    """Wall-clock seconds, for received and failed times."""
    return time.time()
