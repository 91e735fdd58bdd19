"""A sink's pipeline: read its records from the buffer, map them, hand them over, acknowledge.

One pipeline per sink. A reader task reads records after the sink's cursor, runs each through
the mappers that feed this sink (or passes it raw), and sends envelopes into a bounded stream
that the sink consumes. ``SinkAcks`` turns the sink's per-message answers into per-record buffer
acknowledgements: a record is done when all its messages are delivered or dead-lettered.
"""

from __future__ import annotations

import collections
import itertools
import time
import traceback
from collections.abc import Callable, Iterable

import anyio
import anyio.lowlevel
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from .. import ids, metrics
from ..backoff import full_jitter
from ..buffer import Buffer
from ..components import Sink
from ..errors import BufferUnavailable, RecordRejected
from ..graph import Route
from ..logging import logger
from ..records import Envelope, Record
from ..tap import TapHub

READ_BATCH = 256  # records a read; a one-process daemon's ingress waits while they are mapped
READ_BATCH_ALONE = 1000  # in a delivery process nothing waits on its loop: fewer, larger reads
INBOX_CAPACITY = 2000
IDLE_POLL_SECONDS = 1.0
RESTART_INITIAL_SECONDS = 1.0  # a failed sink starts over after a backoff with full jitter from here...
RESTART_MAX_SECONDS = 60.0  # ... up to this
REPLAYED_KEPT = 50  # record ids of replayed dead letters delivered lately, for the console's replay outcome


class _Rejected(Exception):
    """A mapper refused a record: (mapper, reason, kind)."""


class _SinkFailed(Exception):
    """The sink's ``run`` raised (or returned before the daemon stopped): the sink's fault, not the buffer's."""


class SinkAcks:
    """``connector.Acks`` for one sink: per message in, per record out to the buffer."""

    def __init__(self, sink: str, buffer: Buffer, taps: TapHub):
        self.sink = sink
        self.buffer = buffer
        self.taps = taps
        self.paused_reason: str | None = None
        self.last_error: tuple[str, float] | None = None
        self.failed = False  # paused by the pipeline for a failure of the sink's own: resumed by its next ack
        self._remaining: dict[int, int] = {}
        self._dead: set[int] = set()
        self.replayed: collections.deque[str] = collections.deque(maxlen=REPLAYED_KEPT)  # ids delivered lately
        self.delivered = 0  # messages, since the process started (what /status shows; the metric counts the same)
        self.dead_lettered = 0  # records
        self._log = logger(sink)
        self._sent = metrics.SENT.labels(sink)

    def expect(self, seq: int, messages: int) -> None:
        """Called by the reader: record ``seq`` produced ``messages`` envelopes."""
        self._remaining[seq] = messages

    async def ack(self, envelopes: Iterable[Envelope]) -> None:
        """The sink delivered ``envelopes``."""
        if self.taps.active:
            envelopes = list(envelopes)
            self.taps.publish(self.sink, ((e.id, e.payload) for e in envelopes))
        done = self._count_down(envelopes)
        self.delivered += done[1]
        self._sent.inc(done[1])
        if done[0]:
            await self.buffer.ack(self.sink, done[0])
        if self.failed and done[1]:
            self._recovered()

    async def dead_letter(self, envelope: Envelope, reason: str, attempts: int = 1) -> None:
        """The sink refuses ``envelope`` permanently: keep its record as a dead letter."""
        seq = envelope.record.seq
        if seq not in self._dead:
            await self.keep(envelope.record, reason, metrics.reason_label(reason), attempts)
            self._dead.add(seq)
        done, _ = self._count_down([envelope])
        if done:
            await self.buffer.ack(self.sink, done)
        if self.failed:
            self._recovered()

    async def keep(self, record: Record, reason: str, kind: str, attempts: int = 1) -> None:
        """Store ``record`` as this sink's dead letter, count it, and report it (not an ack)."""
        await store_dead_letter(self.buffer, self.sink, record, reason, attempts)
        self.dead_lettered += 1
        metrics.DEAD_LETTERS.labels(self.sink, kind).inc()
        self.error(reason, "dead_letter")
        self._log.warning("dead letter", record_id=record.id, reason=reason)

    def error(self, reason: str, kind: str) -> None:
        """Report a failure (a retry, a refusal): counted, and shown by ``connector status``."""
        self.last_error = (reason, time.time())
        metrics.ERRORS.labels(self.sink, kind).inc()

    def pause(self, reason: str) -> None:
        """The destination is failing as a whole: mark the sink paused (``/status``, a metric)."""
        self.error(reason, "paused")
        if self.paused_reason is None:
            self._log.error("sink paused", reason=reason)
            metrics.SINK_PAUSED.labels(self.sink).set(1)
        self.paused_reason = reason

    def resume(self) -> None:
        """The destination answers again."""
        if self.paused_reason is not None:
            self._log.info("sink resumed")
            metrics.SINK_PAUSED.labels(self.sink).set(0)
        self.paused_reason = None

    def caught_up(self) -> None:
        """The reader found nothing more to hand out: a restarted sink holding nothing is well."""
        if self.failed and not self._remaining:
            self._recovered()

    def _recovered(self) -> None:
        self.failed = False
        self.resume()

    def start_over(self) -> None:
        """The sink failed: what it was handed is handed out again, and counted anew (a record
        already dead-lettered is not dead-lettered twice)."""
        self._remaining.clear()

    def _count_down(self, envelopes: Iterable[Envelope]) -> tuple[list[int], int]:
        remaining, done, count = self._remaining, [], 0
        for envelope in envelopes:
            seq = envelope.record.seq
            count += 1
            if seq not in remaining:  # a redelivered copy (nats) was already counted down
                continue
            left = remaining[seq] - 1
            if left:
                remaining[seq] = left
            else:
                del remaining[seq]
                if envelope.record.only_sink is not None and seq not in self._dead:
                    self.replayed.append(envelope.record.id)  # a replayed dead letter got through
                self._dead.discard(seq)
                done.append(seq)
        return done, count


async def store_dead_letter(buffer: Buffer, sink: str, record: Record, reason: str, attempts: int) -> None:
    """Keep a dead letter, waiting while the buffer cannot write: a record is only passed over
    once its dead letter is stored."""
    for attempt in itertools.count():
        try:
            await buffer.dead_letter(sink, record, reason, attempts)
            return
        except BufferUnavailable as exc:
            delay = full_jitter(attempt, 0.5, 30.0)
            logger(sink).error("cannot store a dead letter; retrying", error=str(exc), delay_seconds=round(delay, 3))
            await anyio.sleep(delay)


class SinkPipeline:
    """Buffer -> mappers -> sink, for one sink, with drain-on-stop."""

    def __init__(self, name: str, sink: Sink, routes: dict[str, list[Route]], buffer: Buffer,
                 taps: TapHub, tapped_mappers: frozenset[str] = frozenset(), read_batch: int = READ_BATCH,
                 rebuild: Callable[[], Sink] | None = None):
        self.name = name
        self.read_batch = read_batch
        self.sink = sink
        self.rebuild = rebuild  # a fresh sink after a failure: nothing the failed one held is answered for twice
        self.routes = routes
        self.buffer = buffer
        self.taps = taps
        self.tapped_mappers = tapped_mappers  # mappers whose output this pipeline shows to taps
        self.acks = SinkAcks(name, buffer, taps)
        self.finished = anyio.Event()
        self._draining = False
        self._stopping = anyio.Event()
        self._log = logger(name)
        self._received = metrics.RECEIVED.labels(name)

    def drain(self) -> None:
        """Stop waiting for new records: deliver what is stored, then finish."""
        self._draining = True
        self._stopping.set()
        self.buffer.notify()

    async def run(self) -> None:
        """Run the sink until the daemon stops; when the sink itself fails (a write error, a
        plugin's bug), pause it with the reason, wait with backoff, and start it over from its
        committed cursor: it holds its records, and the other sinks and the ingress go on. A failure
        of the buffer ends the run (and the daemon)."""
        attempt = 0
        try:
            while True:
                try:
                    await self._run_once()
                    return
                except* _SinkFailed as failed:
                    cause = failed.exceptions[0].__cause__
                attempt = attempt + 1 if self.acks.failed else 0  # still failed: it delivered nothing since
                await self._start_over(cause, full_jitter(attempt, RESTART_INITIAL_SECONDS, RESTART_MAX_SECONDS))
                if self._draining:
                    return  # what it holds stays in the buffer for the next start
        finally:
            self.finished.set()

    async def _run_once(self) -> None:
        send, receive = anyio.create_memory_object_stream[Envelope](INBOX_CAPACITY)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read, send)
            async with receive:
                try:
                    await self.sink.run(receive, self.acks)
                except BufferUnavailable:
                    raise
                except Exception as exc:
                    raise _SinkFailed from exc
                if not self._draining:
                    raise _SinkFailed from RuntimeError("the sink's run() returned while the daemon runs")

    async def _start_over(self, cause: BaseException | None, delay: float) -> None:
        reason = f"the sink failed: {cause!r}"
        self.acks.pause(reason)
        self.acks.failed = True
        self._log.error("sink failed; it holds its records and starts over", reason=reason,
                        retry_in_seconds=round(delay, 2),
                        traceback="".join(traceback.format_exception(cause)) if cause is not None else None)
        with anyio.move_on_after(delay):
            await self._stopping.wait()
        await self.buffer.rewind(self.name)
        self.acks.start_over()
        if self.rebuild is not None:
            self.sink = self.rebuild()

    async def _read(self, send: MemoryObjectSendStream[Envelope]) -> None:
        try:
            await self._read_into(send)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the sink stopped taking envelopes (it failed): the pipeline starts it over

    async def _read_into(self, send: MemoryObjectSendStream[Envelope]) -> None:
        async with send:
            while True:
                records = await self.buffer.read(self.name, self.read_batch)
                if not records:
                    self.acks.caught_up()
                    if self._draining:
                        return
                    await self.buffer.wait(IDLE_POLL_SECONDS)
                    continue
                skipped: list[int] = []
                mapped = 0
                for record in records:
                    try:
                        envelopes = self._map(record)
                    except _Rejected as rejected:
                        await self._reject(record, *rejected.args)
                        envelopes = []
                    if not envelopes:
                        skipped.append(record.seq)
                        continue
                    mapped += len(envelopes)
                    self.acks.expect(record.seq, len(envelopes))
                    for envelope in envelopes:
                        try:  # without yielding while there is room: the sink then takes batches
                            send.send_nowait(envelope)
                        except anyio.WouldBlock:
                            await send.send(envelope)
                self._received.inc(mapped)
                if skipped:
                    await self.buffer.ack(self.name, skipped)
                await anyio.lowlevel.checkpoint()  # mapping does not yield: let requests in

    def _map(self, record: Record) -> list[Envelope]:
        """The envelopes of ``record`` for this sink; [] when it has none (then it is acked);
        ``_Rejected`` (mapper, reason, kind) when a mapper refuses it."""
        if record.only_sink is not None and record.only_sink != self.name:
            return []
        envelopes: list[Envelope] = []
        for route in self.routes.get(record.source, ()):
            if route.mapper is None:
                envelopes.append(Envelope(ids.message_id(record.id, route.name, 0),
                                          msgspec.Raw(record.body), record))
                continue
            try:
                messages = route.mapper.map(record)
            except RecordRejected as exc:
                raise _Rejected(route.name, exc.reason, "rejected") from None
            except Exception as exc:  # a mapper bug on one record must not stop the sink
                raise _Rejected(route.name, f"mapper failed: {exc!r}", "mapper_failed") from None
            if not messages:  # a filter the user configured (require_opt_in, ignore_events...)
                metrics.FILTERED.labels(route.name, self.name).inc()
                continue
            mapped = [Envelope(ids.message_id(record.id, route.name, index), message, record, index)
                      for index, message in enumerate(messages)]
            if self.taps.active and route.name in self.tapped_mappers:
                self.taps.publish(route.name, ((e.id, e.payload) for e in mapped))
            envelopes.extend(mapped)
        return envelopes

    async def _reject(self, record: Record, mapper: str, reason: str, kind: str) -> None:
        await self.acks.keep(record, f"{mapper}: {reason}", kind)
        metrics.ERRORS.labels(mapper, kind).inc()
