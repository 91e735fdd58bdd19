"""``connector preview -c FILE --mapper NAME [--last N] [--against OLD]``: a mapper as FILE defines it,
run on the last records the sqlite buffer holds for its inputs (kept after delivery for
``[buffer] retain_seconds``), daemon running or not, without secrets.

Each record prints as one JSON line: its id and the messages (or the dead-letter reason). With
``--against OLD`` the records are mapped by both configs' mapper of that name, and only those
whose output differs print, old beside new: what a changed mapping would change on real traffic.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ..buffer.sqlite import SqliteBuffer
from ..config import Config
from ..errors import CommandError, RecordRejected
from ..graph import build_mappers
from ..records import Record

_encoder = msgspec.json.Encoder()


def preview(config: Config, mapper: str, last: int, against: Config | None) -> int:
    """Print what ``mapper`` makes of the last ``last`` stored records of its inputs."""
    new = _mapper(config, mapper)
    old = None if against is None else _mapper(against, mapper)
    records = _last_records(config, config.mappers[mapper].inputs, last)
    for record in records:
        output = _map(new, record)
        if old is None:
            print(_encoder.encode({"record": record.id, **output}).decode())
        elif (before := _map(old, record)) != output:
            print(_encoder.encode({"record": record.id, "old": before, "new": output}).decode())
    return 0


def _mapper(config: Config, name: str) -> Any:
    if name not in config.mappers:
        raise CommandError(f"{config.path}: no mapper named {name!r} (mappers: {', '.join(config.mappers) or 'none'})")
    return build_mappers(config)[name]


def _last_records(config: Config, sources: list[str], last: int) -> list[Record]:
    buffer = config.buffer.build(config.directory)
    if not isinstance(buffer, SqliteBuffer):
        raise CommandError(f"{config.where('buffer', 'type')}: preview reads the sqlite buffer (a nats stream keeps "
                           "records by its own retention: replay a copy instead)")
    try:
        db = sqlite3.connect(f"file:{buffer.path}?mode=ro", uri=True, timeout=30)
        try:
            marks = ", ".join("?" * len(sources))
            rows = db.execute(f"SELECT seq, id, source, received_at, body FROM records WHERE source IN ({marks}) "
                              "ORDER BY seq DESC LIMIT ?", (*sources, last)).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CommandError(f"cannot read the buffer at {buffer.path}: {exc}") from None
    if not rows:
        raise CommandError(f"the buffer at {buffer.path} holds no records of {', '.join(sources)}: delivered records "
                           "leave it at once unless [buffer] retain_seconds keeps them (e.g. 86400)")
    return [Record(seq, rid, source, at, bytes(body)) for seq, rid, source, at, body in reversed(rows)]


def _map(mapper: Any, record: Record) -> dict[str, Any]:
    try:
        return {"messages": mapper.map(record)}
    except RecordRejected as exc:
        return {"dead_letter": exc.reason}
    except Exception as exc:  # as the pipeline says it
        return {"dead_letter": f"mapper failed: {exc!r}"}
