"""NDJSON sinks: ``stdout`` writes to standard output, ``file`` appends to a file.

The file sink writes whole lines only: a batch that fails half-written (a full disk) is cut back
to the last whole line before the error goes up (the daemon then pauses the sink and starts it
over, holding its records). It creates the file with ``mode`` (0600: records carry emails) and
opens a new one when the file was moved or removed (logrotate), noticed before each batch.
"""

from __future__ import annotations

import os
import sys
from typing import IO

import anyio
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
        return StreamSink(sys.stdout.buffer)


class FileSinkConfig(connector.SinkConfig, tag="file"):
    """``type = "file"``: messages appended to ``path`` as NDJSON, flushed per batch.

    ``fsync = true`` also syncs each batch to disk before acknowledging it; ``mode`` (octal, as a
    string: ``"0640"``) is the new file's permissions.
    """

    path: str
    fsync: bool = False
    mode: str = "0600"

    def build(self, ctx: connector.BuildContext) -> connector.Sink:
        try:
            mode = int(self.mode, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise connector.ConfigError(f"sinks.{ctx.name}.mode: {self.mode!r} is not an octal file mode "
                                        '(e.g. "0600", "0640")')
        return FileSink(ctx.path(self.path), self.fsync, mode)


class StreamSink(connector.Sink):
    """Writes batches to a binary stream and acknowledges them once flushed."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream

    async def run(self, inbox: connector.Inbox, acks: connector.Acks) -> None:
        while batch := await connector.next_batch(inbox, MAX_BATCH):
            await anyio.to_thread.run_sync(self._write, _ndjson(batch))
            await acks.ack(batch)

    def _write(self, data: bytes) -> None:
        self.stream.write(data)
        self.stream.flush()


class FileSink(connector.Sink):
    """Appends whole lines to ``path`` (its folder made if need be), reopening it when it moved."""

    def __init__(self, path: str, fsync: bool, mode: int = 0o600):
        self.path = path
        self.fsync = fsync
        self.mode = mode
        self._fd = -1

    async def run(self, inbox: connector.Inbox, acks: connector.Acks) -> None:
        try:
            while batch := await connector.next_batch(inbox, MAX_BATCH):
                await anyio.to_thread.run_sync(self._append, _ndjson(batch))
                await acks.ack(batch)
        finally:
            self._close()

    def _append(self, data: bytes) -> None:
        fd = self._open()
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view, written = memoryview(data), 0
            while written < len(data):
                written += os.write(fd, view[written:])
            if self.fsync:
                os.fsync(fd)
        except OSError:
            os.ftruncate(fd, start)  # never a torn line: the batch is written again, whole, later
            raise

    def _open(self) -> int:
        """The open file, opened again when ``path`` is no longer it (moved, removed)."""
        if self._fd >= 0:
            try:
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    return self._fd
            except FileNotFoundError:
                pass
            self._close()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, self.mode)
            os.fchmod(self._fd, self.mode)  # new: its mode as set, whatever the umask
        except FileExistsError:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        return self._fd

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
