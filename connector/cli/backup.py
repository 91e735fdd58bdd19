"""``connector backup -c FILE DEST``: an online copy of the sqlite buffer, daemon running or not.

SQLite's backup API copies one consistent snapshot (a read transaction: the daemon goes on
storing and delivering meanwhile) into ``DEST``, created 0600 and replaced atomically. To restore:
stop the daemon, put the copy at ``buffer.path`` (and remove that file's ``-wal`` and ``-shm``),
start it. The nats buffer is backed up with JetStream's own tools (``nats stream backup``).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile

from ..buffer.sqlite import SqliteBuffer
from ..config import Config
from ..errors import CommandError


def backup(config: Config, destination: str) -> int:
    """Copy the config's sqlite buffer to ``destination``; print what the copy holds."""
    buffer = config.buffer.build(config.directory)
    if not isinstance(buffer, SqliteBuffer):
        raise CommandError(f"{config.where('buffer', 'type')}: backup copies the sqlite buffer; a "
                           f"{type(config.buffer).__struct_config__.tag} buffer is backed up with its own tools "
                           "(nats: `nats stream backup`)")
    if not os.path.exists(buffer.path):
        raise CommandError(f"{buffer.path}: no buffer there yet (buffer.path in {config.path})")
    if os.path.exists(destination):
        raise CommandError(f"{destination} exists: back up to a new name (a copy is never written over)")
    directory = os.path.dirname(os.path.abspath(destination))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".connector-backup-")  # created 0600
    os.close(fd)
    try:
        source = sqlite3.connect(buffer.path, timeout=30)
        copy = sqlite3.connect(temporary)
        try:
            source.backup(copy)  # in one step: one snapshot, whatever the daemon writes meanwhile
            (records,) = copy.execute("SELECT count(*) FROM records").fetchone()
            (letters,) = copy.execute("SELECT count(*) FROM dead_letters").fetchone()
        finally:
            copy.close()
            source.close()
        os.replace(temporary, destination)
    except (OSError, sqlite3.Error) as exc:
        os.unlink(temporary)
        raise CommandError(f"cannot back up {buffer.path} to {destination}: {exc}") from None
    print(f"backed up {buffer.path} to {destination} ({os.path.getsize(destination):,} bytes): "
          f"{records:,} records not yet delivered by every sink, {letters:,} dead letters")
    return 0
