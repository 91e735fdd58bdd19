"""A sink that fails is started over, fresh, from its committed cursor: every record delivered, the
backlog bigger than its inbox, messages of a record never counted twice across a restart."""

from __future__ import annotations

import anyio
import msgspec

import connector
from connector.buffer.base import NewRecord
from connector.buffer.memory import MemoryBuffer
from connector.delivery.pipeline import INBOX_CAPACITY, SinkPipeline
from connector.graph import Route
from connector.tap import TapHub


class TwoMessages(connector.Mapper):
    def map(self, record: connector.Record) -> list[dict]:
        return [{"type": "identify", "n": msgspec.json.decode(record.body)["n"]},
                {"type": "track", "n": msgspec.json.decode(record.body)["n"]}]


class FailingThenWell(connector.Sink):
    """Fails its first ``failures`` runs after taking a batch (and keeps one envelope back, as a
    batching sink carries one over); then delivers everything."""

    runs = 0

    def __init__(self, failures: int, delivered: list):
        self.failures, self.delivered, self.carried = failures, delivered, []

    async def run(self, inbox, acks) -> None:
        FailingThenWell.runs += 1
        while batch := await connector.next_batch(inbox, 700):
            if FailingThenWell.runs <= self.failures:
                self.carried.append(batch[-1])
                await acks.ack(batch[:1])  # one delivered before the failure
                self.delivered.append(batch[0].payload)
                raise OSError(28, "No space left on device")
            await acks.ack(self.carried + batch)  # a stale envelope of a failed run, acked again
            self.delivered.extend(e.payload for e in batch)


def test_a_failed_sink_is_started_over_fresh_and_every_record_is_delivered():
    delivered: list = []
    FailingThenWell.runs = 0
    records = 3 * INBOX_CAPACITY  # more than the inbox holds: the reader is blocked when the sink fails

    async def main() -> tuple[dict, int]:
        buffer = MemoryBuffer(100_000)
        await buffer.open(["sink"])
        await buffer.append([NewRecord(f"r{n}", "src", 0.0, msgspec.json.encode({"n": n})) for n in range(records)])
        pipeline = SinkPipeline("sink", FailingThenWell(2, delivered), {"src": [Route("m", TwoMessages())]}, buffer,
                                TapHub(), rebuild=lambda: FailingThenWell(2, delivered))
        import connector.delivery.pipeline as pipeline_module

        pipeline_module.RESTART_INITIAL_SECONDS = 0.01
        async with anyio.create_task_group() as tg:
            tg.start_soon(pipeline.run)
            with anyio.fail_after(30):
                while buffer.lag()["sink"]:
                    await anyio.sleep(0.05)
            assert pipeline.acks.paused_reason is None  # it delivered again: resumed by itself
            pipeline.drain()
        return buffer.lag(), FailingThenWell.runs

    lag, runs = anyio.run(main)
    assert lag == {"sink": 0} and runs == 3
    assert {(m["type"], m["n"]) for m in delivered} == {(t, n) for n in range(records) for t in ("identify", "track")}
