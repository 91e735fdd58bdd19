"""The sqlite buffer's writer: one thread that uses the writer connection, and group commit.

Every write runs, in order, on that one thread. Appends are group-committed: while one
transaction commits, the next appends gather in the open ``Batch``, which the writer thread
commits as soon as the previous commit is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ..base import NewRecord

T = TypeVar("T")
ROWS_PER_STATEMENT = 150  # 750 parameters: under SQLite's oldest limit of 999
LOCK_WAIT_SECONDS = 30.0  # a write waits this long for another connection's transaction
LOCK_RETRY_SECONDS = 0.0002


class Batch:
    """Records that will share one transaction; each appender's ``waiter`` is called on the loop
    with the outcome (None once committed, else the error)."""

    __slots__ = ("records", "size", "checkpoints", "waiters")

    def __init__(self) -> None:
        self.records: list[NewRecord] = []
        self.size = 0  # bytes of the records' bodies
        self.checkpoints: dict[str, bytes] = {}
        self.waiters: list[Callable[[BaseException | None], None]] = []


class WriterThread:
    """The one thread that uses the writer connection: jobs run one after another, in order.

    A commit of records starts as soon as the previous job ends; nothing waits for the event
    loop to come round in between (with a worker thread per commit, a busy loop's turn was
    most of a commit's time). Results go back with ``call_soon_threadsafe`` (the daemon runs
    on asyncio: uvicorn needs it).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self.loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._work, name="sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the writer thread; it reports back by itself (see ``call``)."""
        self._jobs.put((fn, args))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the writer thread and return its result (it completes even if
        the caller is cancelled meanwhile, as ``anyio.to_thread.run_sync`` does)."""
        future: asyncio.Future[T] = self.loop.create_future()
        self.submit(self._settle, future, fn, args)
        with anyio.CancelScope(shield=True):
            result = await future
        return result

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
            self.loop.call_soon_threadsafe(callback, *args)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args = job
            fn(*args)

    async def stop(self) -> None:
        """Finish the queued jobs (and those the loop was about to hand over), then end the thread."""
        self.loop.call_soon(self._jobs.put, None)  # after submits already scheduled on the loop
        await anyio.to_thread.run_sync(self._thread.join)


def when_unlocked(fn: Callable[..., T], *args: Any) -> T:
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


def insert_rows(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
    """One INSERT of up to ``ROWS_PER_STATEMENT`` rows; the seq of the last (0 for none)."""
    if not rows:
        return 0
    values = ", ".join(["(?, ?, ?, ?, ?)"] * len(rows))
    cursor = db.execute(f"INSERT INTO records (id, source, received_at, body, only_sink) VALUES {values}",
                        [value for row in rows for value in row])
    return int(cursor.lastrowid)  # type: ignore[arg-type]


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (unless SQLite already rolled it back)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
