"""Dead letters in the sqlite buffer: kept per record and sink, listed, replayed, purged.

Functions of a connection: writes run on the writer thread, reads in a worker thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from ...records import DeadLetter, Record
from .writer import transaction

COLUMNS = "id, sink, record_id, source, received_at, body, reason, attempts, failed_at"


def insert(db: sqlite3.Connection, sink: str, record: Record, reason: str, attempts: int) -> None:
    db.execute("INSERT INTO dead_letters (sink, record_id, source, received_at, body, reason, attempts, failed_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (sink, record.id, record.source, record.received_at, record.body, reason, attempts, time.time()))


def select(db: sqlite3.Connection, ids: Sequence[int]) -> list[DeadLetter]:
    """Dead letters, oldest first (only ``ids`` when given)."""
    rows = db.execute(f"SELECT {COLUMNS} FROM dead_letters{_where(ids)} ORDER BY id", list(ids)).fetchall()
    return [DeadLetter(*row) for row in rows]


def replay(db: sqlite3.Connection, ids: Sequence[int]) -> int:
    """Move dead letters (all, without ``ids``) back into the log, with their record ids, for their sink only."""
    with transaction(db):
        count = db.execute("INSERT INTO records (id, source, received_at, body, only_sink) "
                           f"SELECT record_id, source, received_at, body, sink FROM dead_letters{_where(ids)} "
                           "ORDER BY id", list(ids)).rowcount
        db.execute(f"DELETE FROM dead_letters{_where(ids)}", list(ids))
    return int(count)


def purge(db: sqlite3.Connection, ids: Sequence[int]) -> int:
    """Delete dead letters (all, without ``ids``); return how many."""
    return int(db.execute(f"DELETE FROM dead_letters{_where(ids)}", list(ids)).rowcount)


def _where(ids: Sequence[int]) -> str:
    return f" WHERE id IN ({', '.join('?' * len(ids))})" if ids else ""
