"""The sqlite buffer's tables, and their migrations by ``PRAGMA user_version``.

``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``, in one transaction. A
database older than versions (0, from before they were kept) gets every migration; the first
one only creates what is missing, so it fits those too. A newer database than this connector
knows is refused: going on could corrupt it.

The byte total (``stats.bytes``) has one writer per direction: the insert trigger adds every
stored body, the retention delete (``buffer.py``) subtracts what it deletes, in the same
transaction.
"""

from __future__ import annotations

import sqlite3

from ...logging import logger
from .writer import transaction

INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
VACUUM_AT_OPEN_BYTES = 64 << 20  # an older database up to this size is converted when opened

MIGRATIONS: list[str] = [
    # 1: records, per-sink cursors, dead letters, checkpoints, the byte total, sink states (unused
    # since the delivery process answers for its sinks on its control socket alone: left in place,
    # so that an older connector can still open the file)
    """
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
""",
]
VERSION = len(MIGRATIONS)


class NewerSchema(Exception):
    """The database was written by a newer connector."""


def migrate(db: sqlite3.Connection) -> int:
    """Bring ``db`` to ``VERSION``; return the version it had. A database made here, or small
    enough to rewrite at once, gives freed pages back to the filesystem (incremental vacuum)."""
    (found,) = db.execute("PRAGMA user_version").fetchone()
    if found > VERSION:
        raise NewerSchema(f"its schema is version {found}, written by a newer connector; this one knows "
                          f"versions up to {VERSION}: upgrade connector, or point buffer.path elsewhere")
    _incremental_vacuum(db)
    for version in range(found, VERSION):
        with transaction(db):
            for statement in _statements(MIGRATIONS[version]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
    return int(found)


def _statements(script: str) -> list[str]:
    """The statements of a migration script (a trigger's body keeps its own semicolons)."""
    statements, current = [], ""
    for line in script.strip().splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


def _incremental_vacuum(db: sqlite3.Connection) -> None:
    """Turn on ``auto_vacuum = INCREMENTAL`` (it takes a VACUUM once the file has a header, which
    WAL mode writes at once): for a database of up to ``VACUUM_AT_OPEN_BYTES`` (a new one, or an
    older one); a larger one keeps its size, and says so."""
    (mode,) = db.execute("PRAGMA auto_vacuum").fetchone()
    if mode == INCREMENTAL:
        return
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    if pages * page_size <= VACUUM_AT_OPEN_BYTES:
        db.execute(f"PRAGMA auto_vacuum = {INCREMENTAL}")
        try:
            db.execute("VACUUM")  # rewrites the file with the new mode
        except sqlite3.Error as exc:  # no room for the copy (a full disk): start anyway, convert next time
            logger("buffer").warning("could not convert the buffer's file to give pages back", error=str(exc))
    else:
        logger("buffer").warning("the buffer's file will not shrink after a backlog drains (made by an older "
                                 "connector and too large to convert at start)", size_bytes=pages * page_size,
                                 detail="stop the daemon, then: sqlite3 FILE 'PRAGMA auto_vacuum=2; VACUUM;'")
