"""The ``sqlite`` buffer: the embedded default, a WAL-mode SQLite file on local disk.

An append returns once its transaction is committed with ``synchronous=FULL``. Concurrent
appends are group-committed: while one transaction commits, the next appends gather in the open
batch, which the writer thread commits as soon as the previous commit is done. Every write runs,
in order, on that one thread (``_WriterThread``); reads run in worker threads.
The most recent records are also kept in memory (the tail), so sinks that keep up read them
without a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .. import metrics
from ..errors import BufferFull, BufferInUse, BufferUnavailable
from ..logging import logger
from ..records import DeadLetter, Record
from .base import Buffer, BufferConfig, CursorTracker, NewRecord, now

T = TypeVar("T")
CURSOR_FLUSH_SECONDS = 0.1
TAIL_RECORDS = 20_000
QUERY_AT_LEAST_EVERY_SECONDS = 1.0  # also finds records other processes added (dlq replay)
OTHER_PROCESS_POLL_SECONDS = 0.02  # how often a delivery process looks for new records
STORED_BYTES_SECONDS = 1.0  # how often the byte total is read again (other processes delete)
ROWS_PER_STATEMENT = 150  # 750 parameters: under SQLite's oldest limit of 999
LOCK_WAIT_SECONDS = 30.0  # a write waits this long for another connection's transaction
LOCK_RETRY_SECONDS = 0.0002

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at REAL NOT NULL,
    body BLOB NOT NULL,
    only_sink TEXT
);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    record_id TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at REAL NOT NULL,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS stats (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO stats (id, bytes) SELECT 1, COALESCE(SUM(length(body)), 0) FROM records;
CREATE TABLE IF NOT EXISTS sink_state (sink TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS records_bytes_in AFTER INSERT ON records BEGIN
    UPDATE stats SET bytes = bytes + length(NEW.body); END;
"""


class SqliteBufferConfig(BufferConfig, tag="sqlite"):
    """``type = "sqlite"``: ``path`` of the database file, ``max_bytes`` of stored bodies."""

    path: str = "data/connector.db"
    max_bytes: int = 1 << 30

    def build(self, config_dir: str, appended_elsewhere: bool = False) -> Buffer:
        path = os.path.normpath(os.path.join(config_dir, os.path.expanduser(self.path)))
        return SqliteBuffer(path, self.max_bytes, appended_elsewhere)


class _Batch:
    """Records that will share one transaction; every appender in it waits on ``done``."""

    __slots__ = ("records", "size", "checkpoints", "done", "error", "queued")

    def __init__(self) -> None:
        self.records: list[NewRecord] = []
        self.size = 0  # bytes of the records' bodies
        self.checkpoints: dict[str, bytes] = {}
        self.done = anyio.Event()
        self.error: BaseException | None = None
        self.queued = False


class _WriterThread:
    """The one thread that uses the writer connection: jobs run one after another, in order.

    A commit of records starts as soon as the previous job ends; nothing waits for the event
    loop to come round in between (with a worker thread per commit, a busy loop's turn was
    most of a commit's time). Results go back with ``call_soon_threadsafe`` (the daemon runs
    on asyncio: uvicorn needs it).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._work, name="sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the writer thread; it reports back by itself (see ``call``)."""
        self._jobs.put((fn, args))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the writer thread and return its result (it completes even if
        the caller is cancelled meanwhile, as ``anyio.to_thread.run_sync`` does)."""
        future: asyncio.Future[T] = self._loop.create_future()
        self.submit(self._settle, future, fn, args)
        with anyio.CancelScope(shield=True):
            return await future

    def _settle(self, future: asyncio.Future[T], fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        try:
            result = fn(*args)
        except Exception as exc:
            self.report(future.set_exception, exc)
        else:
            self.report(future.set_result, result)

    def report(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` on the event loop."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting anymore
            self._loop.call_soon_threadsafe(callback, *args)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args = job
            fn(*args)

    async def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._jobs.put(None)
        await anyio.to_thread.run_sync(self._thread.join)


class SqliteBuffer(Buffer):
    """Records, cursors and dead letters in one SQLite database."""

    def __init__(self, path: str, max_bytes: int = 1 << 30, appended_elsewhere: bool = False):
        super().__init__()
        self.path = path
        self.max_bytes = max_bytes
        self.appended_elsewhere = appended_elsewhere  # another process appends: poll, nobody notifies
        self._last_seq = 0
        self._owner_lock: int | None = None
        self.commits = 0  # transactions of records: fewer than appends when they are grouped
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._writer_thread: _WriterThread | None = None
        self._read_lock = anyio.Lock()
        self._batch_lock = threading.Lock()  # the open batch: filled by the loop, taken by the writer
        self._open_batch = _Batch()
        self._cursors: dict[str, CursorTracker] = {}
        self._cursors_dirty = False
        self._flushed_at = 0.0
        self._deleted_upto = 0
        self._tail: deque[Record] = deque(maxlen=TAIL_RECORDS)
        self._queried_at: dict[str, float] = {}

    # lifecycle -------------------------------------------------------------------------------
    def claim(self) -> None:
        """Hold an exclusive lock on ``<path>.lock`` (with this pid in it) until the process ends."""
        lock_path = self.path + ".lock"
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BufferUnavailable(f"cannot open {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise BufferInUse(f"{self.path}: the buffer is in use by the daemon with pid {holder}; one daemon owns "
                              "a buffer (stop that one, or share work through the nats buffer)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._owner_lock = fd  # closed, and so released, when the process ends, however it ends

    async def open(self, sinks: Sequence[str]) -> None:
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._writer = self._connect()
            self._reader = self._connect()
            self._writer.executescript(SCHEMA)
            self._writer.execute("PRAGMA busy_timeout = 0")  # writes wait in _when_unlocked instead
            saved = dict(self._writer.execute("SELECT sink, seq FROM cursors").fetchall())
            (self.stored_bytes,) = self._writer.execute("SELECT bytes FROM stats").fetchone()
            row = self._writer.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
            self._last_seq = row[0] if row else 0
        except (OSError, sqlite3.Error) as exc:
            raise BufferUnavailable(f"cannot open the sqlite buffer at {self.path}: {exc}") from None
        self._cursors = {sink: CursorTracker(saved.get(sink, 0)) for sink in sinks}
        self._writer_thread = _WriterThread()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
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
        self.notify()

    # appends ---------------------------------------------------------------------------------
    async def append(self, records: Sequence[NewRecord], checkpoint: tuple[str, bytes] | None = None) -> None:
        size = sum(len(r.body) for r in records)
        if self.stored_bytes + size > self.max_bytes:
            await self._reread_stored_bytes()  # another process (a delivery process) may have freed some
            if self.stored_bytes + size > self.max_bytes:
                raise BufferFull(f"the sqlite buffer holds its limit of {self.max_bytes} bytes")
        if self._writer_thread is None:
            raise BufferUnavailable("the sqlite buffer is closed")
        with self._batch_lock:
            batch = self._open_batch
            batch.records.extend(records)
            batch.size += size
            if checkpoint is not None:
                batch.checkpoints[checkpoint[0]] = checkpoint[1]
            first, batch.queued = not batch.queued, True
        if first:  # the writer commits the batch after the jobs before it; it is open until then
            self._writer_thread.submit(self._commit, batch)
        await batch.done.wait()
        if batch.error is not None:
            raise BufferUnavailable("the sqlite buffer could not store the records") from batch.error

    async def maintain(self) -> None:
        """Keep ``stored_bytes`` true while other processes append and delete."""
        while True:
            await anyio.sleep(STORED_BYTES_SECONDS)
            await self._reread_stored_bytes()

    async def _reread_stored_bytes(self) -> None:
        if self._reader is None:
            return
        with contextlib.suppress(sqlite3.Error):
            async with self._read_lock:
                (self.stored_bytes,) = await self._in_thread(
                    lambda: self._reader.execute("SELECT bytes FROM stats").fetchone())  # type: ignore[union-attr]

    def _commit(self, batch: _Batch) -> None:
        """On the writer thread: close the batch, store it, report to the loop."""
        with self._batch_lock:
            self._open_batch = _Batch()
        rows = [(r.id, r.source, r.received_at, r.body, r.only_sink) for r in batch.records]
        try:
            last_seq = _when_unlocked(self._insert, rows, list(batch.checkpoints.items()))
            self.commits += 1
        except Exception as exc:
            self._writer_thread.report(self._committed, batch, rows, 0, exc)  # type: ignore[union-attr]
        else:
            self._writer_thread.report(self._committed, batch, rows, last_seq, None)  # type: ignore[union-attr]

    def _committed(self, batch: _Batch, rows: list[tuple[Any, ...]], last_seq: int,
                   error: BaseException | None) -> None:
        """On the loop, in commit order: account for the batch and wake its appenders."""
        if error is None:
            self.stored_bytes += batch.size
            if rows and self._cursors:  # no sink reads in this process (a delivery process does): no tail
                self._remember(rows, last_seq)
            metrics.BUFFER_COMMITS.inc()
            self.healthy = True
        else:
            self.healthy = False
        batch.error = error
        batch.done.set()
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
            return _insert_rows(db, rows)
        last_seq = 0
        with _transaction(db):
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                last_seq = _insert_rows(db, rows[start:start + ROWS_PER_STATEMENT])
            db.executemany("INSERT OR REPLACE INTO checkpoints (name, value) VALUES (?, ?)", checkpoints)
        return last_seq

    def _remember(self, rows: list[tuple[Any, ...]], last_seq: int) -> None:
        """Keep the committed rows in the tail; it stays contiguous (a gap empties it)."""
        first_seq = last_seq - len(rows) + 1
        self._last_seq = last_seq
        if self._tail and self._tail[-1].seq != first_seq - 1:
            self._tail.clear()
        self._tail.extend(Record(seq, *row) for seq, row in zip(range(first_seq, last_seq + 1), rows))

    # reads and acks --------------------------------------------------------------------------
    async def read(self, sink: str, limit: int) -> list[Record]:
        if self._cursors_dirty and time.monotonic() - self._flushed_at >= CURSOR_FLUSH_SECONDS:
            await self._flush_cursors()
        cursor = self._cursors[sink]
        records = self._from_tail(cursor.read_position, limit)
        if not records and time.monotonic() - self._queried_at.get(sink, 0.0) >= QUERY_AT_LEAST_EVERY_SECONDS:
            records = None
        if records is None:
            self._queried_at[sink] = time.monotonic()
            async with self._read_lock:
                rows = await self._in_thread(self._select, cursor.read_position, limit)
            records = [Record(*row) for row in rows]
            if records:
                self._last_seq = max(self._last_seq, records[-1].seq)
        cursor.handed_out([r.seq for r in records])
        return records

    def _from_tail(self, after: int, limit: int) -> list[Record] | None:
        """The records after ``after`` from memory, or None when the tail does not reach back."""
        tail = self._tail
        if not tail or after + 1 < tail[0].seq:
            return None
        start = after + 1 - tail[0].seq
        if start >= len(tail):
            return []
        return [tail[i] for i in range(start, min(start + limit, len(tail)))]

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
        with _transaction(db):
            db.executemany("INSERT OR REPLACE INTO cursors (sink, seq) VALUES (?, ?)", positions)
            if floor > self._deleted_upto:
                (freed,) = db.execute(
                    "SELECT COALESCE(SUM(length(body)), 0) FROM records WHERE seq <= ?", (floor,)).fetchone()
                db.execute("DELETE FROM records WHERE seq <= ?", (floor,))
                db.execute("UPDATE stats SET bytes = bytes - ?", (freed,))
            (stored,) = db.execute("SELECT bytes FROM stats").fetchone()
        self._deleted_upto = max(self._deleted_upto, floor)
        return int(stored)

    async def dead_letter(self, sink: str, record: Record, reason: str, attempts: int) -> None:
        row = (sink, record.id, record.source, record.received_at, record.body, reason, attempts, now())
        try:
            await self._write(self._execute_committed,
                              "INSERT INTO dead_letters (sink, record_id, source, received_at, body, "
                              "reason, attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        except sqlite3.Error as exc:
            self.healthy = False
            raise BufferUnavailable(f"cannot store the dead letter: {exc}") from exc

    def _execute_committed(self, sql: str, params: Sequence[Any]) -> int:
        db = self._writer
        assert db is not None
        return db.execute(sql, params).rowcount

    # dead letters ------------------------------------------------------------------------------
    async def dead_letters(self, ids: Sequence[int] = ()) -> list[DeadLetter]:
        sql = ("SELECT id, sink, record_id, source, received_at, body, reason, attempts, failed_at "
               "FROM dead_letters")
        if ids:
            sql += f" WHERE id IN ({', '.join('?' * len(ids))})"
        async with self._read_lock:
            rows = await self._in_thread(lambda: self._reader.execute(sql + " ORDER BY id", list(ids)).fetchall())  # type: ignore[union-attr]
        return [DeadLetter(*row) for row in rows]

    async def replay(self, ids: Sequence[int] = ()) -> int:
        where = f" WHERE id IN ({', '.join('?' * len(ids))})" if ids else ""

        def move() -> int:
            db = self._writer
            assert db is not None
            with _transaction(db):
                count = db.execute(
                    "INSERT INTO records (id, source, received_at, body, only_sink) "
                    f"SELECT record_id, source, received_at, body, sink FROM dead_letters{where} ORDER BY id",
                    list(ids)).rowcount
                db.execute(f"DELETE FROM dead_letters{where}", list(ids))
            return count

        count = await self._write(move)
        self.notify()
        return count

    async def purge(self, ids: Sequence[int] = ()) -> int:
        where = f" WHERE id IN ({', '.join('?' * len(ids))})" if ids else ""
        return await self._write(self._execute_committed, f"DELETE FROM dead_letters{where}", list(ids))

    async def wait(self, timeout: float) -> None:
        if self.appended_elsewhere:
            await anyio.sleep(min(timeout, OTHER_PROCESS_POLL_SECONDS))
        else:
            await super().wait(timeout)

    async def save_sink_states(self, states: dict[str, bytes]) -> None:
        """Publish each sink's state (JSON) for the process that serves HTTP."""
        def save() -> None:
            assert self._writer is not None
            with _transaction(self._writer):
                self._writer.executemany("INSERT OR REPLACE INTO sink_state (sink, state) VALUES (?, ?)",
                                         list(states.items()))

        with contextlib.suppress(sqlite3.Error):  # best effort: the next save tries again
            await self._write(save)

    async def sink_states(self) -> dict[str, bytes]:
        """The sink states the delivery process published."""
        async with self._read_lock:
            rows = await self._in_thread(
                lambda: self._reader.execute("SELECT sink, state FROM sink_state").fetchall())  # type: ignore[union-attr]
        return {sink: bytes(state) for sink, state in rows}

    def lag(self) -> dict[str, int]:
        return {sink: max(0, self._last_seq - c.committed) for sink, c in self._cursors.items()}

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a write on the writer thread, after the writes queued before it."""
        if self._writer_thread is None:
            raise BufferUnavailable("the sqlite buffer is closed")
        return await self._writer_thread.call(_when_unlocked, fn, *args)

    @staticmethod
    async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args)


def _when_unlocked(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, run again while another connection (another process) holds the write lock.

    SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries: a commit behind another
    process's 3 ms transaction would wait 8. Every write here is one statement or one
    transaction that rolls back on error, so trying it again is safe.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(LOCK_RETRY_SECONDS)


def _insert_rows(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
    """One INSERT of up to ``ROWS_PER_STATEMENT`` rows; the seq of the last (0 for none)."""
    if not rows:
        return 0
    values = ", ".join(["(?, ?, ?, ?, ?)"] * len(rows))
    cursor = db.execute(f"INSERT INTO records (id, source, received_at, body, only_sink) VALUES {values}",
                        [value for row in rows for value in row])
    return int(cursor.lastrowid)  # type: ignore[arg-type]


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (unless SQLite already rolled it back)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
