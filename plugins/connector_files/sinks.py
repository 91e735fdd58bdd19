"""NDJSON sinks: ``stdout`` writes to standard output, ``file`` appends to a file."""

from __future__ import annotations

import os
import sys
from typing import IO

import anyio
import anyio.abc
import anyio.to_thread
import msgspec

import connector

MAX_BATCH = 1000
_encoder = msgspec.json.Encoder()


def _ndjson(envelopes: list[connector.Envelope]) -> bytes:
    buffer = bytearray()
    for envelope in envelopes:
        _encoder.encode_into(envelope.payload, buffer, len(buffer))
        buffer.extend(b"\n")
    return bytes(buffer)


class StdoutSinkConfig(connector.SinkConfig, tag="stdout"):
    """``type = "stdout"``: every message as one JSON line on standard output."""

    def build(self, ctx: connector.BuildContext) -> connector.Sink:
        return StreamSink(sys.stdout.buffer, fsync=False)


class FileSinkConfig(connector.SinkConfig, tag="file"):
    """``type = "file"``: messages appended to ``path`` as NDJSON, flushed per batch.

    ``fsync = true`` also syncs each batch to disk before acknowledging it.
    """

    path: str
    fsync: bool = False

    def build(self, ctx: connector.BuildContext) -> connector.Sink:
        return FileSink(ctx.path(self.path), self.fsync)


class StreamSink(connector.Sink):
    """Writes batches to a binary stream and acknowledges them once flushed."""

    def __init__(self, stream: IO[bytes], fsync: bool):
        self.stream = stream
        self.fsync = fsync

    async def run(self, inbox: anyio.abc.ObjectReceiveStream[connector.Envelope], acks: connector.Acks) -> None:
        while batch := await connector.next_batch(inbox, MAX_BATCH):
            await anyio.to_thread.run_sync(self._write, _ndjson(batch))
            await acks.ack(batch)

    def _write(self, data: bytes) -> None:
        self.stream.write(data)
        self.stream.flush()
        if self.fsync:
            os.fsync(self.stream.fileno())


class FileSink(connector.Sink):
    """Appends to a file it opens when it starts (its folder made if need be) and closes when done."""

    def __init__(self, path: str, fsync: bool):
        self.path = path
        self.fsync = fsync

    async def run(self, inbox: anyio.abc.ObjectReceiveStream[connector.Envelope], acks: connector.Acks) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "ab") as stream:
            await StreamSink(stream, self.fsync).run(inbox, acks)
