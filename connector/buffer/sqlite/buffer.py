"""The ``sqlite`` buffer: the embedded default, a WAL-mode SQLite file on local disk.

An append returns once its transaction is committed with ``synchronous=FULL`` (group commit:
``writer.py``; ``append_soon`` calls back once the commit is done instead of waiting). Reads run
in worker threads (a delivery process reads its records on its loop). The most recent records
are also kept in memory (``tail.py``), so sinks that keep up read them without a query. Cursors
are saved, and what every sink has passed deleted, at most every ``CURSOR_FLUSH_SECONDS``. Dead
letters: ``dead_letters.py``; the tables and their migrations: ``schema.py``; one daemon per
file: ``lock.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ... import metrics
from ...errors import BufferFull, BufferUnavailable
from ...logging import logger
from ...paths import resolve
from ...records import DeadLetter, Record
from ..base import Buffer, BufferConfig, CursorTracker, NewRecord
from . import dead_letters
from .lock import claim_file
from .schema import NewerSchema, migrate
from .tail import Tail
from .writer import ROWS_PER_STATEMENT, Batch, WriterThread, insert_rows, transaction, when_unlocked

T = TypeVar("T")
CURSOR_FLUSH_SECONDS = 0.1
QUERY_AT_LEAST_EVERY_SECONDS = 1.0  # also finds records other processes added (dlq replay)
OTHER_PROCESS_POLL_SECONDS = 0.02  # how often a delivery process looks for new records
STORED_BYTES_SECONDS = 1.0  # how often the byte total is read again (other processes delete)
VACUUM_PAGES = 1024  # free pages (4 MiB) past which retention gives them back to the filesystem
WAL_LIMIT_BYTES = 16 << 20  # the -wal file is cut back to this after a checkpoint

class SqliteBufferConfig(BufferConfig, tag="sqlite", frozen=True):
    """``type = "sqlite"``: ``path`` of the database file, ``max_bytes`` of stored bodies;
    ``min_free_bytes`` of free space on its filesystem, below which new records are refused
    (the ingress answers 503 + Retry-After) until space returns; ``retain_seconds`` a delivered
    record is kept (for ``connector preview``), within ``max_bytes``: oldest first out."""

    path: str = "data/connector.db"
    max_bytes: int = 1 << 30
    min_free_bytes: int = 256 << 20
    retain_seconds: float = 0.0

    def build(self, config_dir: str, appended_elsewhere: bool = False) -> Buffer:
        path = resolve(config_dir, self.path)
        return SqliteBuffer(path, self.max_bytes, appended_elsewhere, self.min_free_bytes, self.retain_seconds)


class SqliteBuffer(Buffer):
    """Records, cursors and dead letters in one SQLite database."""

    max_bytes: int  # always bounded

    def __init__(self, path: str, max_bytes: int = 1 << 30, appended_elsewhere: bool = False,
                 min_free_bytes: int = 0, retain_seconds: float = 0.0):
        super().__init__()
        self.path = path
        self.location = f"sqlite {os.path.realpath(path)}"
        self.max_bytes: int = max_bytes
        self.min_free_bytes = min_free_bytes
        self.retain_seconds = retain_seconds
        self.low_disk: str | None = None  # why records are refused while the disk is nearly full
        self.appended_elsewhere = appended_elsewhere  # another process appends: poll, nobody notifies
        self._last_seq = 0
        self._owner_lock: int | None = None
        self.commits = 0  # transactions of records: fewer than appends when they are grouped
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._writer_thread: WriterThread | None = None
        self._read_lock = anyio.Lock()
        self._batch_lock = threading.Lock()  # the open batch: filled by the loop, taken by the writer
        self._open_batch = Batch()
        self._cursors: dict[str, CursorTracker] = {}
        self._cursors_dirty = False
        self._flushed_at = 0.0
        self._deleted_upto = 0
        self._tail = Tail()
        self._queried_at: dict[str, float] = {}

    # lifecycle -------------------------------------------------------------------------------
    def claim(self) -> None:
        self._owner_lock = claim_file(self.path)

    async def open(self, sinks: Sequence[str]) -> None:
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            self._writer = self._connect()
            self._reader = self._connect()
            migrate(self._writer)
            self._writer.execute("PRAGMA busy_timeout = 0")  # writes wait in when_unlocked instead
            saved = dict(self._writer.execute("SELECT sink, seq FROM cursors").fetchall())
            (self.stored_bytes,) = self._writer.execute("SELECT bytes FROM stats").fetchone()
            row = self._writer.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
            self._last_seq = row[0] if row else 0
        except (OSError, sqlite3.Error, NewerSchema) as exc:
            raise BufferUnavailable(f"cannot open the sqlite buffer at {self.path}: {exc}") from None
        self._cursors = {sink: CursorTracker(saved.get(sink, 0)) for sink in sinks}
        self._writer_thread = WriterThread()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        return conn

    async def close(self) -> None:
        if self._writer is None:
            return
        with anyio.CancelScope(shield=True):
            await self._flush_cursors()
            writer_thread, self._writer_thread = self._writer_thread, None  # appends answer "closed" now
            await writer_thread.stop()  # type: ignore[union-attr]
            async with self._read_lock:
                self._writer.close()
                self._reader.close()  # type: ignore[union-attr]
        self._writer = self._reader = None
        if self._owner_lock is not None:  # the next owner may start now
            os.close(self._owner_lock)
            self._owner_lock = None
        self.notify()

    # appends ---------------------------------------------------------------------------------
    async def append(self, records: Sequence[NewRecord], checkpoint: tuple[str, bytes] | None = None) -> None:
        if self.low_disk is not None:
            raise BufferFull(self.low_disk)
        size = sum(len(r.body) for r in records)
        if self.stored_bytes + size > self.max_bytes:
            await self._reread_stored_bytes()  # another process (a delivery process) may have freed some
            if self.stored_bytes + size > self.max_bytes:
                raise BufferFull(f"the sqlite buffer holds its limit of {self.max_bytes} bytes")
        if self._writer_thread is None:
            raise BufferUnavailable("the sqlite buffer is closed")
        outcome: asyncio.Future[BaseException | None] = self._writer_thread.loop.create_future()
        self._join(records, size, checkpoint, outcome.set_result)
        error = await asyncio.shield(outcome)
        if error is not None:
            raise BufferUnavailable("the sqlite buffer could not store the records") from error

    async def has_room(self) -> bool:
        if self.low_disk is not None:
            return False
        if self.stored_bytes >= self.max_bytes:
            await self._reread_stored_bytes()  # the delivery process may have freed some
        return self.stored_bytes < self.max_bytes

    def append_soon(self, records: Sequence[NewRecord], done: Callable[[BaseException | None], None]) -> bool:
        size = sum(len(r.body) for r in records)
        if self.stored_bytes + size > self.max_bytes or self.low_disk is not None:  # ``append`` says why
            return False
        self._join(records, size, None, done)
        return True

    def _join(self, records: Sequence[NewRecord], size: int, checkpoint: tuple[str, bytes] | None,
              waiter: Callable[[BaseException | None], None]) -> None:
        """Add the records to the open batch (the writer commits it after the jobs before it)."""
        if self._writer_thread is None:
            raise BufferUnavailable("the sqlite buffer is closed")
        with self._batch_lock:
            batch = self._open_batch
            batch.records.extend(records)
            batch.size += size
            if checkpoint is not None:
                batch.checkpoints[checkpoint[0]] = checkpoint[1]
            first = not batch.waiters
            batch.waiters.append(waiter)
        if first:  # once the loop has run what is ready: the appends of the requests that arrived together
            self._writer_thread.loop.call_soon(self._writer_thread.submit, self._commit, batch)

    async def maintain(self) -> None:
        """Keep ``stored_bytes`` true while other processes append and delete, and ``low_disk``
        while the free space on the buffer's filesystem is below ``min_free_bytes``."""
        while True:
            self._look_at_the_disk()
            await anyio.sleep(STORED_BYTES_SECONDS)
            await self._reread_stored_bytes()
            if self.retain_seconds and self._cursors:
                self._cursors_dirty = True  # retained records age out without a cursor moving
                await self._flush_cursors()

    def _look_at_the_disk(self) -> None:
        if not self.min_free_bytes or self.appended_elsewhere:
            return
        free = self.free_disk_bytes()
        if free is None:
            return  # the next append says what is wrong
        was = self.low_disk
        if free < self.min_free_bytes:
            self.low_disk = (f"the buffer's disk has {free:,} bytes free, below buffer.min_free_bytes "
                             f"({self.min_free_bytes:,}): free space, or lower min_free_bytes")
            if was is None:
                logger("buffer").error("disk nearly full; refusing new records (503) until space returns",
                                       path=self.path, free_bytes=free, min_free_bytes=self.min_free_bytes)
        elif was is not None:
            self.low_disk = None
            logger("buffer").info("disk space back; taking records again", free_bytes=free)

    async def _reread_stored_bytes(self) -> None:
        if self._reader is None:
            return
        with contextlib.suppress(sqlite3.Error):
            async with self._read_lock:
                (self.stored_bytes,) = await self._in_thread(
                    lambda: self._reader.execute("SELECT bytes FROM stats").fetchone())  # type: ignore[union-attr]

    def _commit(self, batch: Batch) -> None:
        """On the writer thread: close the batch, store it, report to the loop."""
        with self._batch_lock:
            self._open_batch = Batch()
        rows = [(r.id, r.source, r.received_at, r.body, r.only_sink) for r in batch.records]
        try:
            last_seq = when_unlocked(self._insert, rows, list(batch.checkpoints.items()))
            self.commits += 1
        except Exception as exc:
            self._writer_thread.report(self._committed, batch, rows, 0, exc)  # type: ignore[union-attr]
        else:
            self._writer_thread.report(self._committed, batch, rows, last_seq, None)  # type: ignore[union-attr]

    def _committed(self, batch: Batch, rows: list[tuple[Any, ...]], last_seq: int,
                   error: BaseException | None) -> None:
        """On the loop, in commit order: account for the batch and wake its appenders."""
        if error is None:
            self.stored_bytes += batch.size
            if rows and self._cursors:  # no sink reads in this process (a delivery process does): no tail
                self._last_seq = last_seq
                self._tail.remember(rows, last_seq)
            metrics.BUFFER_COMMITS.inc()
            self.healthy = True
        else:
            self.healthy = False
        for waiter in batch.waiters:  # called here, not scheduled: answers leave in this turn of the loop
            try:
                waiter(error)
            except Exception as exc:  # one appender's failure must not leave the others waiting
                logger("buffer").error("an appender failed on its outcome", error=repr(exc))
        if error is None:
            self.notify()

    def _insert(self, rows: list[tuple[Any, ...]], checkpoints: list[tuple[str, bytes]]) -> int:
        """Insert in one transaction; return the last seq (the batch's seqs are consecutive).

        A batch that fits one statement is one statement, its own transaction: SQLite runs it,
        commit included, in one call that lets go of the GIL once. (``executemany`` takes the
        GIL back after every row, and waits for the busy event loop each time.) The ``stats``
        byte total follows by trigger.
        """
        db = self._writer
        assert db is not None
        if not checkpoints and len(rows) <= ROWS_PER_STATEMENT:
            return insert_rows(db, rows)
        last_seq = 0
        with transaction(db):
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                last_seq = insert_rows(db, rows[start:start + ROWS_PER_STATEMENT])
            db.executemany("INSERT OR REPLACE INTO checkpoints (name, value) VALUES (?, ?)", checkpoints)
        return last_seq

    # reads and acks --------------------------------------------------------------------------
    async def read(self, sink: str, limit: int) -> list[Record]:
        if self._cursors_dirty and time.monotonic() - self._flushed_at >= CURSOR_FLUSH_SECONDS:
            await self._flush_cursors()
        cursor = self._cursors[sink]
        records = self._tail.after(cursor.read_position, limit)
        if not records and time.monotonic() - self._queried_at.get(sink, 0.0) >= QUERY_AT_LEAST_EVERY_SECONDS:
            records = None
        if records is None:
            self._queried_at[sink] = time.monotonic()
            async with self._read_lock:
                if self.appended_elsewhere:  # a delivery process: no webhook waits on its loop, and a
                    rows = self._select(cursor.read_position, limit)  # query is cheaper than a thread hop
                else:
                    rows = await self._in_thread(self._select, cursor.read_position, limit)
            records = [Record(*row) for row in rows]
            if records:
                self._last_seq = max(self._last_seq, records[-1].seq)
        cursor.handed_out([r.seq for r in records])
        return records

    def _select(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        assert self._reader is not None
        return self._reader.execute(
            "SELECT seq, id, source, received_at, body, only_sink FROM records "
            "WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)).fetchall()

    async def checkpoint(self, name: str) -> bytes | None:
        async with self._read_lock:
            row = await self._in_thread(lambda: self._reader.execute(  # type: ignore[union-attr]
                "SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone())
        return bytes(row[0]) if row else None

    async def ack(self, sink: str, seqs: Sequence[int]) -> None:
        if self._cursors[sink].acked(seqs):
            self._cursors_dirty = True

    async def rewind(self, sink: str) -> None:
        self._cursors[sink].rewind()

    async def _flush_cursors(self) -> None:
        """Persist moved cursors and delete the records every sink has passed."""
        if not self._cursors_dirty or self._writer_thread is None:
            return
        self._cursors_dirty = False
        self._flushed_at = time.monotonic()
        positions = [(sink, c.committed) for sink, c in self._cursors.items()]
        floor = min(seq for _, seq in positions)
        try:
            self.stored_bytes = await self._write(self._save_cursors, positions, floor)
        except sqlite3.Error as exc:  # disk full or I/O error: keep going, try again at the next flush
            self._cursors_dirty = True
            self.healthy = False
            logger("buffer").warning("cannot save cursors; records may be redelivered", error=str(exc))
            return

    def _save_cursors(self, positions: list[tuple[str, int]], floor: int) -> int:
        """Save the cursors, delete what every sink has passed; return the bytes still stored.
        (One UPDATE of the byte total, not a trigger per deleted row: twice as fast.)"""
        db = self._writer
        assert db is not None
        with transaction(db):
            db.executemany("INSERT OR REPLACE INTO cursors (sink, seq) VALUES (?, ?)", positions)
            if self.retain_seconds:
                upto = self._retained_upto(db, floor)
            elif floor > self._deleted_upto:
                upto = floor
            else:
                upto = 0
            if upto:
                (freed,) = db.execute(
                    "SELECT COALESCE(SUM(length(body)), 0) FROM records WHERE seq <= ?", (upto,)).fetchone()
                db.execute("DELETE FROM records WHERE seq <= ?", (upto,))
                db.execute("UPDATE stats SET bytes = bytes - ?", (freed,))
            (stored,) = db.execute("SELECT bytes FROM stats").fetchone()
        self._deleted_upto = max(self._deleted_upto, floor)
        (free_pages,) = db.execute("PRAGMA freelist_count").fetchone()
        if free_pages >= VACUUM_PAGES:  # a drained backlog: give the pages back, the files shrink
            with contextlib.suppress(sqlite3.Error):  # best effort (a full disk): the cursors are saved already
                db.executescript(f"PRAGMA incremental_vacuum({free_pages});")  # execute() frees one page only
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # busy (a reader) is fine: the next one does it
        return int(stored)

    def _retained_upto(self, db: sqlite3.Connection, floor: int) -> int:
        """The last delivered record to delete while retaining: older than ``retain_seconds``, and
        then the oldest delivered ones while the store is over 80 % of ``max_bytes``."""
        cutoff = time.time() - self.retain_seconds
        (old,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM records WHERE seq <= ? AND received_at < ?",
                            (floor, cutoff)).fetchone()
        (stored,) = db.execute("SELECT bytes FROM stats").fetchone()
        excess = stored - self.max_bytes * 0.8
        if excess <= 0:
            return int(old)
        upto, freed = old, 0
        for seq, size in db.execute("SELECT seq, length(body) FROM records WHERE seq > ? AND seq <= ? ORDER BY seq",
                                    (old, floor)):
            if freed >= excess:
                break
            upto, freed = seq, freed + size
        return int(upto)

    async def dead_letter(self, sink: str, record: Record, reason: str, attempts: int) -> None:
        try:
            await self._write(dead_letters.insert, self._writer, sink, record, reason, attempts)
        except sqlite3.Error as exc:
            self.healthy = False
            raise BufferUnavailable(f"cannot store the dead letter: {exc}") from exc

    # dead letters ------------------------------------------------------------------------------
    async def dead_letters(self, ids: Sequence[int] = ()) -> list[DeadLetter]:
        async with self._read_lock:
            return await self._in_thread(dead_letters.select, self._reader, ids)

    async def replay(self, ids: Sequence[int] = ()) -> int:
        count = await self._write(dead_letters.replay, self._writer, ids)
        self.notify()
        return count

    async def purge(self, ids: Sequence[int] = ()) -> int:
        return await self._write(dead_letters.purge, self._writer, ids)

    async def wait(self, timeout: float) -> None:
        if self.appended_elsewhere:
            await anyio.sleep(min(timeout, OTHER_PROCESS_POLL_SECONDS))
        else:
            await super().wait(timeout)

    def lag(self) -> dict[str, int]:
        return {sink: max(0, self._last_seq - c.committed) for sink, c in self._cursors.items()}

    async def oldest_pending(self, sinks: Sequence[str]) -> dict[str, float]:
        """From the saved cursors (the process that delivers saves them within a second)."""
        def select() -> list[tuple[str, float | None]]:
            assert self._reader is not None
            return [(sink, *self._reader.execute(
                "SELECT (SELECT received_at FROM records "
                "WHERE seq > COALESCE((SELECT seq FROM cursors WHERE sink = ?), 0) "
                "AND (only_sink IS NULL OR only_sink = ?) ORDER BY seq LIMIT 1)", (sink, sink)).fetchone())
                for sink in sinks]

        if self._reader is None:
            return {}
        try:
            async with self._read_lock:
                rows = await self._in_thread(select)
        except sqlite3.Error:
            return {}
        return {sink: at for sink, at in rows if at is not None}

    def free_disk_bytes(self) -> int | None:
        try:
            status = os.statvfs(os.path.dirname(self.path) or ".")
        except OSError:
            return None
        return status.f_bavail * status.f_frsize

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a write on the writer thread, after the writes queued before it."""
        if self._writer_thread is None:
            raise BufferUnavailable("the sqlite buffer is closed")
        return await self._writer_thread.call(when_unlocked, fn, *args)

    @staticmethod
    async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args)


