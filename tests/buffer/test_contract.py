"""One contract for every buffer kind (memory, sqlite, nats on a real nats-server).

Append, read in order, acknowledge, dead-letter, replay with the same ids to the refusing sink
only, purge, checkpoints with records, and a restart that gives back exactly what was not done.
"""

from __future__ import annotations

import time
import uuid

import pytest

from connector.buffer.base import Buffer, NewRecord
from connector.buffer.memory import MemoryBufferConfig
from connector.buffer.sqlite import SqliteBufferConfig
from support.nats_server import NatsServer, available

pytestmark = pytest.mark.anyio
SINKS = ["a", "b"]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    if not available():
        pytest.skip("nats-server is not installed")
    server = NatsServer(tmp_path_factory.mktemp("nats-store")).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["memory", "sqlite", "nats"])
def make(request, tmp_path):
    """``make()`` builds a buffer of the kind on the same storage each time (a restart)."""
    if request.param == "memory":
        config = MemoryBufferConfig()
        shared = config.build(str(tmp_path))  # memory is its process: a "restart" keeps the object
        return lambda: shared
    if request.param == "sqlite":
        return lambda: SqliteBufferConfig(path="b.db").build(str(tmp_path))
    from connector.buffer.nats import NatsBufferConfig

    url = request.getfixturevalue("nats_url")
    stream = f"contract_{uuid.uuid4().hex[:12]}"
    return lambda: NatsBufferConfig(url=url, stream=stream, ack_wait_seconds=1.0,
                                    startup_wait_seconds=5).build(str(tmp_path))


def new(i: int, source: str = "s") -> NewRecord:
    return NewRecord(f"{source}-{i}", source, 1000.0 + i, b'{"n":%d}' % i)


async def read(buffer: Buffer, sink: str, count: int, timeout: float = 10.0) -> list:
    """What ``sink`` reads until it has ``count`` records (or the timeout)."""
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += await buffer.read(sink, count - len(got))
        if len(got) < count:
            await buffer.wait(0.05)
    return got


async def nothing_more(buffer: Buffer, sink: str) -> bool:
    """Whether ``sink`` has nothing left to read. No sleep: a marker appended now is read once the
    buffer hands it over, after whatever else was waiting, so anything but markers means more."""
    marker = f"marker-{uuid.uuid4().hex}"
    await buffer.append([NewRecord(marker, "s", time.time(), b'{"marker":true}')])
    got: list = []
    deadline = time.monotonic() + 10
    while marker not in [r.id for r in got]:
        assert time.monotonic() < deadline, f"{sink} never read the marker: {[r.id for r in got]}"
        got += await buffer.read(sink, 10)
        await buffer.wait(0.05)
    return all(r.id.startswith("marker-") for r in got)


async def restarted(buffer: Buffer, make) -> Buffer:
    await buffer.close()
    again = make()
    if again is buffer:  # memory: nothing survives a real restart, so there is nothing to check
        pytest.skip("the memory buffer is not durable")
    await again.open(SINKS)
    return again


async def test_records_are_read_in_order_with_their_ids_by_every_sink(make):
    buffer = make()
    await buffer.open(SINKS)
    await buffer.append([new(i) for i in range(5)])
    await buffer.append([new(i, "t") for i in range(5, 8)])
    for sink in SINKS:
        records = await read(buffer, sink, 8)
        assert [r.id for r in records] == [f"s-{i}" for i in range(5)] + [f"t-{i}" for i in range(5, 8)]
        assert [r.body for r in records] == [b'{"n":%d}' % i for i in range(8)]
        assert records[0].source == "s" and records[0].received_at == 1000.0
        assert [r.seq for r in records] == sorted(r.seq for r in records)
    await buffer.close()


async def test_a_restart_gives_back_what_was_not_acknowledged(make):
    buffer = make()
    await buffer.open(SINKS)
    await buffer.append([new(i) for i in range(6)])
    records = await read(buffer, "a", 6)
    await buffer.ack("a", [r.seq for r in records[:4]])
    await read(buffer, "b", 6)
    await buffer.ack("b", [r.seq for r in records])
    buffer = await restarted(buffer, make)
    assert [r.id for r in await read(buffer, "a", 2, timeout=5)] == ["s-4", "s-5"]
    assert await nothing_more(buffer, "b")
    await buffer.close()


async def test_a_dead_letter_counts_as_done_and_replays_with_its_id_to_its_sink_only(make):
    buffer = make()
    await buffer.open(SINKS)
    await buffer.append([new(i) for i in range(3)])
    records = await read(buffer, "a", 3)
    await buffer.dead_letter("a", records[1], "refused: for a reason", 2)
    await buffer.ack("a", [r.seq for r in records])  # as the pipeline does: a dead letter is done
    [letter] = await buffer.dead_letters()
    assert (letter.sink, letter.record_id, letter.source, letter.body, letter.reason, letter.attempts) == \
        ("a", "s-1", "s", b'{"n":1}', "refused: for a reason", 2)
    assert await buffer.dead_letters([letter.id]) == [letter]
    assert await buffer.replay([letter.id]) == 1
    assert await buffer.dead_letters() == []
    [again] = await read(buffer, "a", 1)
    assert (again.id, again.body, again.only_sink) == ("s-1", b'{"n":1}', "a")
    b_reads = await read(buffer, "b", 4)  # b sees the replay marked for a: its pipeline passes over it
    assert [(r.id, r.only_sink) for r in b_reads] == [("s-0", None), ("s-1", None), ("s-2", None), ("s-1", "a")]
    await buffer.ack("a", [again.seq])
    await buffer.ack("b", [r.seq for r in b_reads])
    buffer = await restarted(buffer, make) if buffer.durable else buffer
    assert await nothing_more(buffer, "a") and await nothing_more(buffer, "b")
    await buffer.close()


async def test_purge_and_replay_all(make):
    buffer = make()
    await buffer.open(SINKS)
    await buffer.append([new(i) for i in range(4)])
    records = await read(buffer, "a", 4)
    for record in records:
        await buffer.dead_letter("a", record, f"bad {record.id}", 1)
    await buffer.ack("a", [r.seq for r in records])
    letters = await buffer.dead_letters()
    assert [d.record_id for d in letters] == ["s-0", "s-1", "s-2", "s-3"]
    assert await buffer.purge([letters[0].id]) == 1
    assert await buffer.replay() == 3
    assert sorted(r.id for r in await read(buffer, "a", 3)) == ["s-1", "s-2", "s-3"]
    assert await buffer.purge() == 0
    await buffer.close()


async def test_a_checkpoint_is_stored_with_its_records_and_survives_a_restart(make):
    buffer = make()
    await buffer.open(SINKS)
    assert await buffer.checkpoint("source:p") is None
    await buffer.append([new(1, "p")], ("source:p", b"cursor-1"))
    await buffer.append([new(2, "p")], ("source:p", b"cursor-2"))
    assert await buffer.checkpoint("source:p") == b"cursor-2"
    buffer = await restarted(buffer, make)
    assert await buffer.checkpoint("source:p") == b"cursor-2"
    assert [r.id for r in await read(buffer, "a", 2)] == ["p-1", "p-2"]
    await buffer.close()


async def test_dead_letters_survive_a_restart(make):
    buffer = make()
    await buffer.open(SINKS)
    await buffer.append([new(1)])
    [record] = await read(buffer, "a", 1)
    await buffer.dead_letter("a", record, "refused", 1)
    await buffer.ack("a", [record.seq])
    buffer = await restarted(buffer, make)
    assert [(d.sink, d.record_id, d.reason) for d in await buffer.dead_letters()] == [("a", "s-1", "refused")]
    assert await nothing_more(buffer, "a")
    await buffer.close()
