"""The sqlite buffer: group commit, cursors across restarts, retention, limits, dead letters."""

from __future__ import annotations

import time

import anyio
import pytest

from connector.buffer.base import NewRecord
from connector.buffer.sqlite import SqliteBuffer
from connector.errors import BufferFull

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def new(i: int, source: str = "s") -> NewRecord:
    return NewRecord(f"{source}-{i}", source, 0.0, b'{"n":%d}' % i)


async def test_concurrent_appends_are_group_committed(tmp_path):
    buffer = SqliteBuffer(str(tmp_path / "b.db"))
    await buffer.open(["out"])
    async with anyio.create_task_group() as tg:
        for i in range(400):
            tg.start_soon(buffer.append, [new(i)])
    assert buffer.commits < 200, "400 concurrent appends should share transactions"
    records = await buffer.read("out", 1000)
    assert sorted(r.id for r in records) == sorted(f"s-{i}" for i in range(400))
    await buffer.close()


async def test_cursor_survives_restart_and_unacked_records_come_back(tmp_path):
    path = str(tmp_path / "b.db")
    buffer = SqliteBuffer(path)
    await buffer.open(["a", "b"])
    await buffer.append([new(i) for i in range(10)])
    first = await buffer.read("a", 10)
    await buffer.ack("a", [r.seq for r in first[:3]] + [first[5].seq])  # 4 and 5 missing
    await buffer.close()

    buffer = SqliteBuffer(path)
    await buffer.open(["a", "b"])
    again = await buffer.read("a", 10)
    assert [r.id for r in again] == [f"s-{i}" for i in range(3, 10)]
    assert len(await buffer.read("b", 100)) == 10
    await buffer.close()


async def test_records_every_sink_passed_are_deleted(tmp_path):
    buffer = SqliteBuffer(str(tmp_path / "b.db"))
    await buffer.open(["a", "b"])
    await buffer.append([new(i) for i in range(5)])
    for sink in ("a", "b"):
        await buffer.ack(sink, [r.seq for r in await buffer.read(sink, 10)])
    await buffer.close()  # flushes cursors and deletes what both passed
    buffer = SqliteBuffer(str(tmp_path / "b.db"))
    await buffer.open(["a", "b"])
    assert buffer.stored_bytes == 0
    assert buffer.lag() == {"a": 0, "b": 0}
    await buffer.append([new(99)])
    assert [r.id for r in await buffer.read("a", 10)] == ["s-99"], "seqs must never be reused"
    await buffer.close()


async def test_full_buffer_refuses_and_keeps_what_it_has(tmp_path):
    buffer = SqliteBuffer(str(tmp_path / "b.db"), max_bytes=50)
    await buffer.open(["a"])
    await buffer.append([new(i) for i in range(5)])  # 5 x 8 bytes
    with pytest.raises(BufferFull):
        await buffer.append([new(i) for i in range(5, 10)])
    assert len(await buffer.read("a", 100)) == 5
    await buffer.close()


async def test_dead_letters_replay_to_their_sink_only(tmp_path):
    buffer = SqliteBuffer(str(tmp_path / "b.db"))
    await buffer.open(["a", "b"])
    await buffer.append([new(1)])
    (record,) = await buffer.read("a", 10)
    await buffer.dead_letter("a", record, "refused", 3)
    await buffer.ack("a", [record.seq])
    await buffer.ack("b", [r.seq for r in await buffer.read("b", 10)])
    (letter,) = await buffer.dead_letters()
    assert (letter.sink, letter.record_id, letter.reason, letter.attempts) == ("a", "s-1", "refused", 3)
    assert await buffer.replay([letter.id]) == 1
    assert await buffer.dead_letters() == []
    (again,) = await buffer.read("a", 10)
    assert (again.id, again.only_sink) == ("s-1", "a")
    (seen_by_b,) = await buffer.read("b", 10)
    assert seen_by_b.only_sink == "a"  # the pipeline skips records meant for another sink
    assert await buffer.purge() == 0
    await buffer.close()


async def test_byte_total_follows_every_insert_and_delete(tmp_path):
    """The stored-bytes total (the insert trigger adds, the retention delete subtracts): appends of any size, checkpoints, replays and
    deletions all leave it equal to what the records table holds."""
    import sqlite3

    from connector.buffer.sqlite.writer import ROWS_PER_STATEMENT

    path = str(tmp_path / "b.db")
    buffer = SqliteBuffer(path)
    await buffer.open(["a", "b"])
    big = [new(i) for i in range(ROWS_PER_STATEMENT * 2 + 7)]  # several statements, one transaction
    await buffer.append(big)
    await buffer.append([new(1000)], checkpoint=("poller", b"page-2"))
    seqs = [r.seq for r in await buffer.read("a", 1000)]
    assert seqs == list(range(seqs[0], seqs[0] + len(big) + 1)), "a batch's seqs are consecutive, in order"
    assert await buffer.checkpoint("poller") == b"page-2"
    record = (await buffer.read("b", 1000))[0]
    await buffer.dead_letter("b", record, "refused", 1)
    await buffer.ack("a", seqs)
    await buffer.ack("b", seqs)
    await buffer.replay()
    await buffer.close()

    with sqlite3.connect(path) as db:
        (total,) = db.execute("SELECT COALESCE(SUM(length(body)), 0) FROM records").fetchone()
        (kept,) = db.execute("SELECT bytes FROM stats").fetchone()
        (left,) = db.execute("SELECT COUNT(*) FROM records").fetchone()
    assert left == 1, "everything but the replayed record was delivered and deleted"
    assert kept == total == len(record.body)
    buffer = SqliteBuffer(path)
    await buffer.open(["a", "b"])
    assert buffer.stored_bytes == total
    await buffer.close()


async def test_an_append_to_a_closed_buffer_is_refused(tmp_path):
    from connector.errors import BufferUnavailable

    buffer = SqliteBuffer(str(tmp_path / "b.db"))
    await buffer.open(["a"])
    await buffer.close()
    with pytest.raises(BufferUnavailable):
        await buffer.append([new(1)])


async def test_a_database_from_before_schema_versions_is_migrated_and_keeps_its_records(tmp_path):
    import sqlite3

    from connector.buffer.sqlite.schema import MIGRATIONS, VERSION

    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])  # the tables as the first releases made them, user_version 0
    db.execute("INSERT INTO records (id, source, received_at, body) VALUES ('s-1', 's', 0, '{\"n\":1}')")
    db.commit()
    db.close()
    buffer = SqliteBuffer(path)
    await buffer.open(["out"])
    assert [r.id for r in await buffer.read("out", 10)] == ["s-1"]
    assert buffer.stored_bytes == len('{"n":1}')
    await buffer.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (VERSION,)


async def test_a_database_of_a_newer_connector_is_refused_untouched(tmp_path):
    import sqlite3

    from connector.errors import BufferUnavailable

    path = str(tmp_path / "new.db")
    sqlite3.connect(path).execute("PRAGMA user_version = 99")
    buffer = SqliteBuffer(path)
    with pytest.raises(BufferUnavailable, match="schema is version 99, written by a newer connector"):
        await buffer.open(["out"])
    assert sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall() == []


async def test_delivered_records_are_retained_for_retain_seconds_within_max_bytes(tmp_path):
    buffer = SqliteBuffer(str(tmp_path / "b.db"), max_bytes=10_000, retain_seconds=0.5)
    await buffer.open(["sink"])
    await buffer.append([NewRecord(f"s-{i}", "s", time.time(), b'{"n":%d}' % i) for i in range(10)])
    await buffer.ack("sink", [r.seq for r in await buffer.read("sink", 100)])
    await buffer._flush_cursors()
    assert buffer.lag() == {"sink": 0} and buffer.stored_bytes > 0  # delivered, and kept
    await anyio.sleep(0.6)
    buffer._cursors_dirty = True  # as maintain does once a second
    await buffer._flush_cursors()
    assert buffer.stored_bytes == 0  # aged out
    await buffer.close()

    full = SqliteBuffer(str(tmp_path / "c.db"), max_bytes=2_000, retain_seconds=3600)
    await full.open(["sink"])
    for i in range(35):  # 1,785 bytes of bodies: over 80 % of max_bytes once delivered
        await full.append([NewRecord(f"r{i}", "s", time.time(), b'{"pad": "' + b"x" * 40 + b'"}')])
    await full.ack("sink", [r.seq for r in await full.read("sink", 100)])
    await full._flush_cursors()
    assert 0 < full.stored_bytes <= 2_000 * 0.8  # the oldest delivered ones made room
    await full.close()
