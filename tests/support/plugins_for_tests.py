"""Test-only component types: a sink that refuses some records, a sink that crashes, a polling
source that crashes, a source that is neither a webhook nor a polling source."""

from __future__ import annotations

import os

import anyio
import msgspec

import connector
from connector.delivery.batching import next_batch


class PickySinkConfig(connector.SinkConfig, tag="picky"):
    """Writes NDJSON to ``path``; dead-letters messages containing ``refuse`` while the file
    ``refuse_while`` exists (so a test can 'fix the cause' by deleting it)."""

    path: str
    refuse: str
    refuse_while: str

    def build(self, ctx: connector.BuildContext) -> connector.Sink:
        return PickySink(ctx.path(self.path), self.refuse, ctx.path(self.refuse_while))


class PickySink(connector.Sink):
    def __init__(self, path: str, refuse: str, refuse_while: str):
        self.path, self.refuse, self.refuse_while = path, refuse.encode(), refuse_while

    async def run(self, inbox: connector.Inbox, acks: connector.Acks) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "ab") as out:
            while batch := await next_batch(inbox, 100):
                delivered = []
                for envelope in batch:
                    line = msgspec.json.encode(envelope.payload)
                    if self.refuse in line and os.path.exists(self.refuse_while):
                        await acks.dead_letter(envelope, f"refused: contains {self.refuse.decode()}")
                        continue
                    out.write(line + b"\n")
                    delivered.append(envelope)
                out.flush()
                await acks.ack(delivered)


class CrashingSinkConfig(connector.SinkConfig, tag="crashing"):
    """Raises on a batch (after writing a torn line to ``path``, as a full disk would) while the
    file ``crash_while`` exists; otherwise writes NDJSON lines to ``path``."""

    path: str
    crash_while: str

    def build(self, ctx: connector.BuildContext) -> connector.Sink:
        return CrashingSink(ctx.path(self.path), ctx.path(self.crash_while))


class CrashingSink(connector.Sink):
    def __init__(self, path: str, crash_while: str):
        self.path, self.crash_while = path, crash_while

    async def run(self, inbox: connector.Inbox, acks: connector.Acks) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "ab") as out:
            while batch := await next_batch(inbox, 100):
                if os.path.exists(self.crash_while):
                    raise RuntimeError("boom: the crashing sink crashed")
                out.write(b"".join(msgspec.json.encode(e.payload) + b"\n" for e in batch))
                out.flush()
                await acks.ack(batch)


class CountingPollerConfig(connector.SourceConfig, tag="counting_poller"):
    """Stores ``{"n": i}`` for i = 0, 1, 2... (one a poll, ``every`` seconds apart), its position
    the checkpoint; raises after fetching while the file ``crash_while`` exists."""

    crash_while: str
    every: float = 0.05

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        return CountingPoller(ctx.path(self.crash_while), self.every)


class CountingPoller(connector.PollingSource):
    def __init__(self, crash_while: str, every: float):
        self.crash_while, self.every = crash_while, every

    async def run(self, ctx: connector.SourceContext) -> None:
        saved = await ctx.checkpoint()
        n = int(saved) if saved else 0
        while True:
            if os.path.exists(self.crash_while):
                raise RuntimeError(f"boom: the poller crashed at {n}")
            await ctx.append([{"n": n}], checkpoint=str(n + 1).encode())
            n += 1
            await anyio.sleep(self.every)


class NowhereSourceConfig(connector.SourceConfig, tag="nowhere"):
    """A source type written wrong: its ``build`` returns a plain ``Source``, which no part runs."""

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        return connector.Source()


@connector.hookimpl
def connector_register(registry: connector.Registry) -> None:
    registry.add(PickySinkConfig)
    registry.add(CrashingSinkConfig)
    registry.add(CountingPollerConfig)
    registry.add(NowhereSourceConfig)
