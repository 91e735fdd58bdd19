"""The ``nats`` buffer: NATS JetStream, for many daemons sharing one stream of records.

Records are published to ``<stream>.records.<source>`` with ``Nats-Msg-Id`` set to the record id
(JetStream's duplicate window drops a sender's retry) and each append returns once JetStream
acknowledged every record (``publish.py``: a turn's appends published together, each answered
from its last ack). Each sink is one durable pull consumer shared by all daemons (``pull.py``:
fetched over a subscription of our own): a record is acked after delivery, its ack deadline
extended while this daemon holds it, nak'ed on shutdown so another daemon takes it at once, and
terminated after a dead letter is stored in ``<stream>_DLQ``. The records stream uses interest
retention: a record leaves once every sink's consumer acknowledged it. Polling sources'
checkpoints live in the key-value bucket ``<stream>_checkpoints``, written after the page's
records (a crash in between repeats the page, which the duplicate window drops).

Durability comes from replication: a single server acknowledges before it syncs to disk, so run
production with ``replicas = 3``. Every append is answered within ``publish_timeout_seconds``
(JetStream's ack, or ``BufferUnavailable``: the ingress's 503, never a hanging request); a probe
once a second keeps ``healthy`` (``/readyz``) true to whether the stream can store, and watches
each sink's consumer: records waiting on the server while the sink asks and gets nothing for
``stall_seconds`` is a stall, logged, shown in ``/status`` and mended by binding the consumer
again (a consumer paused on the server is shown, not overridden: someone paused it). A server
below ``MIN_SERVER`` (releases with known losses of acknowledged data) is refused at start
unless ``allow_unsafe_server``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import nats
import nats.errors
import nats.js.errors
from nats.js import api

from ...backoff import full_jitter
from ...errors import BufferUnavailable
from ...logging import logger
from ...paths import resolve
from ...records import DeadLetter, Record
from ..base import Buffer, NewRecord
from .publish import AckedPublisher, Message
from .pull import PullConsumer, stream_sequence
from .settings import NatsSettings

HEADER_SOURCE = "Connector-Source"
HEADER_RECEIVED = "Connector-Received-At"
HEADER_ONLY_SINK = "Connector-Only-Sink"
HEADER_REASON = "Connector-Reason"
HEADER_ATTEMPTS = "Connector-Attempts"
HEADER_SINK = "Connector-Sink"
HEADER_RECORD_ID = "Connector-Record-Id"
FETCH_TIMEOUT_SECONDS = 0.5
PROBE_SECONDS = 1.0  # how often the stream's ability to store is asked, and the sinks' lag
MAX_ACK_PENDING = 20_000  # records a consumer hands out unacknowledged, over all daemons
MIN_SERVER = (2, 10, 23)  # 2.10.20-2.10.22 lost acknowledged writes on a crash (Jepsen, 2025-12)


class UnsafeServer(Exception):
    """The server is below ``MIN_SERVER`` and ``allow_unsafe_server`` is off."""


def _token(name: str) -> str:
    """A name as one subject token."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


class NatsBuffer(Buffer):
    """Records in a JetStream stream, one durable consumer per sink, dead letters in another."""

    def __init__(self, config: NatsSettings, config_dir: str):
        super().__init__()
        self.config = config
        self.config_dir = config_dir
        self.stream = config.stream
        self.location = f"nats stream {config.stream}"
        self.dlq_stream = f"{config.stream}_DLQ"
        self.log = logger("buffer")
        self._nc: Any = None
        self._js: Any = None
        self._publisher: AckedPublisher | None = None
        self._subjects: dict[str, str] = {}  # a source's records' subject
        self._subs: dict[str, PullConsumer] = {}
        self._refusals: dict[str, str | None] = {}
        self._held: dict[str, dict[int, Any]] = {}
        self._pending: dict[str, int] = {}
        self._asked_at: dict[str, float] = {}  # when the sink last fetched (it is not paused)
        self._handed_at: dict[str, float] = {}  # when a fetch last returned records, or the consumer was bound
        self._stalls: dict[str, str] = {}
        self._kv: Any = None

    # lifecycle -------------------------------------------------------------------------------
    async def open(self, sinks: Sequence[str]) -> None:
        """Connect and create what is missing, waiting up to ``startup_wait_seconds`` for NATS."""
        wait = self.config.startup_wait_seconds
        try:
            with anyio.fail_after(wait):
                await self._open_retrying(sinks)
        except TimeoutError:
            await self._close_connection()
            raise BufferUnavailable(f"nats at {self.config.url} did not answer within {wait} s") from None
        except UnsafeServer as exc:
            await self._close_connection()
            raise BufferUnavailable(str(exc)) from None

    async def _open_retrying(self, sinks: Sequence[str]) -> None:
        for attempt in itertools.count():
            try:
                await self._open(sinks)
                return
            except (OSError, nats.errors.Error, nats.js.errors.Error) as exc:
                await self._close_connection()
                delay = full_jitter(attempt, 0.5, 5.0)
                self.log.warning("waiting for nats", error=str(exc) or type(exc).__name__,
                                 retry_in_seconds=round(delay, 3))
                await anyio.sleep(delay)

    async def _open(self, sinks: Sequence[str]) -> None:
        c = self.config
        self._nc = await nats.connect(
            servers=c.url if isinstance(c.url, list) else [c.url], user=c.user, password=c.password,
            token=c.token, user_credentials=self._path(c.creds_file), tls=self._tls(),
            connect_timeout=c.connect_timeout_seconds, max_reconnect_attempts=-1, allow_reconnect=True,
            disconnected_cb=self._disconnected, reconnected_cb=self._reconnected,
            error_cb=self._error, name="connector",
            skip_subject_validation=True)  # every subject is made here of checked tokens, or the server's
        self._check_server()
        self._js = self._nc.jetstream()
        await self._ensure_streams()
        self._publisher = AckedPublisher(self._nc, c.publish_timeout_seconds)
        await self._publisher.start()
        for sink in sinks:
            self._subs[sink] = await self._consumer(sink)
            self._held[sink] = {}
            self._pending[sink] = 0
            self._handed_at[sink] = time.monotonic()

    def _check_server(self) -> None:
        """Refuse a server below ``MIN_SERVER`` (or warn, with ``allow_unsafe_server``)."""
        version = self._nc.connected_server_version
        found = (version.major, version.minor, version.patch)
        if found >= MIN_SERVER:
            return
        minimum = ".".join(map(str, MIN_SERVER))
        why = (f"nats-server {'.'.join(map(str, found))} is older than {minimum}, the oldest without known losses of "
               "acknowledged records (crashes lost JetStream writes up to 2.10.22)")
        if not self.config.allow_unsafe_server:
            raise UnsafeServer(f"{why}: upgrade nats-server, or set buffer.allow_unsafe_server = true to run anyway")
        self.log.warning("running on an unsafe nats-server (buffer.allow_unsafe_server = true)", detail=why)

    def _path(self, value: str | None) -> str | None:
        return None if value is None else resolve(self.config_dir, value)

    def _tls(self) -> ssl.SSLContext | None:
        c = self.config
        if not (c.tls_ca or c.tls_cert):
            return None
        context = ssl.create_default_context(cafile=self._path(c.tls_ca))
        if c.tls_cert:
            context.load_cert_chain(self._path(c.tls_cert), self._path(c.tls_key))  # type: ignore[arg-type]
        return context

    async def _ensure_streams(self) -> None:
        c = self.config
        await self._ensure(api.StreamConfig(
            name=self.stream, subjects=[f"{self.stream}.records.>"], retention=api.RetentionPolicy.INTEREST,
            max_bytes=c.max_bytes, max_age=c.max_age_seconds, duplicate_window=c.duplicate_window_seconds,
            num_replicas=c.replicas, storage=api.StorageType.FILE, discard=api.DiscardPolicy.NEW))
        await self._ensure(api.StreamConfig(
            name=self.dlq_stream, subjects=[f"{self.stream}.dlq.>"], retention=api.RetentionPolicy.LIMITS,
            max_age=c.max_age_seconds * 4, num_replicas=c.replicas, storage=api.StorageType.FILE))
        self._kv = await self._js.create_key_value(bucket=f"{self.stream}_checkpoints", replicas=c.replicas)

    async def _ensure(self, config: api.StreamConfig) -> None:
        try:
            await self._js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(config)

    def _consumer_config(self, sink: str) -> api.ConsumerConfig:
        return api.ConsumerConfig(durable_name=self._durable(sink), ack_policy=api.AckPolicy.EXPLICIT,
                                  ack_wait=self.config.ack_wait_seconds, max_deliver=-1,
                                  max_ack_pending=MAX_ACK_PENDING, deliver_policy=api.DeliverPolicy.ALL,
                                  filter_subject=f"{self.stream}.records.>")

    def _durable(self, sink: str) -> str:
        return f"{self.stream}_{_token(sink)}"

    async def _consumer(self, sink: str) -> PullConsumer:
        config = self._consumer_config(sink)
        durable = self._durable(sink)
        try:
            await self._js.consumer_info(self.stream, durable)
        except nats.js.errors.NotFoundError:
            await self._js.add_consumer(self.stream, config)
        consumer = PullConsumer(self._nc, self.stream, durable)
        await consumer.start()
        return consumer

    async def keep_for(self, sinks: Sequence[str]) -> None:
        """Declare each sink's durable consumer: with interest retention, a record stored while a
        sink has no consumer yet would be kept for nobody (deleted at once)."""
        for sink in sinks:
            try:
                await self._js.add_consumer(self.stream, self._consumer_config(sink))
            except (OSError, nats.errors.Error, nats.js.errors.Error) as exc:
                raise BufferUnavailable(f"cannot declare the nats consumer of sink {sink}: {exc}") from exc

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            for sink, consumer in self._subs.items():
                with contextlib.suppress(Exception):
                    await consumer.stop()  # first: nothing arrives while the rest is handed back
                await self._nak_all(sink)
            await self._close_connection()
        self.notify()

    def _unread(self, sink: str) -> list[Any]:
        """The sink's messages delivered to this daemon: held by the sink, and arrived unread."""
        return [*self._held[sink].values(), *self._subs[sink].arrived]

    async def _nak_all(self, sink: str) -> None:
        """Hand back what this daemon holds of the sink's: JetStream redelivers it at once, in order."""
        held, self._held[sink] = list(self._held[sink].values()), {}
        await self._nak(sink, held + self._take_arrived(sink))

    def _take_arrived(self, sink: str) -> list[Any]:
        arrived = list(self._subs[sink].arrived)
        self._subs[sink].arrived.clear()
        return arrived

    async def _nak(self, sink: str, messages: list[Any]) -> None:
        failed: list[str] = []
        for msg in messages:
            try:
                await msg.nak()
            except (OSError, nats.errors.Error) as exc:  # redelivered after ack_wait instead
                failed.append(type(exc).__name__)
        if failed:  # once, not once a record: a lost connection fails them all
            self.log.warning("nats nak failed; those records come back after ack_wait_seconds", sink=sink,
                             records=len(failed), error=failed[0])

    async def _close_connection(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            # close, not drain: draining a pull subscription waits for a queue that never empties
            with contextlib.suppress(Exception), anyio.move_on_after(5):
                await self._nc.flush(timeout=2)
                await self._nc.close()
        self._nc = None

    async def _disconnected(self) -> None:
        self.healthy = False
        self.log.warning("nats disconnected; webhooks answer 503 until it is back")

    async def _reconnected(self) -> None:
        self.healthy = True
        self.log.info("nats reconnected")

    async def _error(self, exc: Exception) -> None:
        self.log.warning("nats error", error=str(exc) or type(exc).__name__)

    async def maintain(self) -> None:
        """Extend the ack deadline of records sinks still hold; once a second, ask whether the
        stream can store (``healthy``), its size, and each sink's consumer's pending count."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._extend_held)
            while True:
                await self._probe()
                await anyio.sleep(PROBE_SECONDS)

    async def _extend_held(self) -> None:
        while True:
            await anyio.sleep(self.config.ack_wait_seconds / 3)
            for sink in self._subs:
                for msg in self._unread(sink):
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def _probe(self) -> None:
        if self._nc is None or not self._nc.is_connected:
            return  # ``_disconnected`` said so; ``_reconnected`` says when it is back
        try:
            with anyio.fail_after(PROBE_SECONDS):
                info = await self._js.stream_info(self.stream)
        except (OSError, TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            if self.healthy:
                self.log.warning("the nats stream cannot store now; webhooks answer 503 until it can",
                                 error=str(exc) or type(exc).__name__)
            self.healthy = False
            return
        self.stored_bytes = info.state.bytes
        if not self.healthy:
            self.log.info("the nats stream stores again")
        self.healthy = True
        for sink in self._subs:
            await self._refresh_lag(sink)

    async def _refresh_lag(self, sink: str) -> None:
        """The sink's lag from its consumer on the server (not from the last message fetched)."""
        with contextlib.suppress(OSError, TimeoutError, nats.errors.Error, nats.js.errors.Error):
            try:
                with anyio.fail_after(PROBE_SECONDS):
                    consumer = await self._js.consumer_info(self.stream, self._durable(sink))
            except nats.js.errors.NotFoundError:
                await self._declare_again(sink)
                return
            self._pending[sink] = consumer.num_pending + consumer.num_ack_pending - len(self._unread(sink))
            await self._watch_for_stall(sink, consumer)

    async def _declare_again(self, sink: str) -> None:
        """The sink's consumer is gone from the server (deleted by someone): declare it again, so
        records are kept for the sink again. It starts at the stream's first record still held (for
        other sinks): some reach the sink twice, with the same ids; records no other sink wanted
        while it was gone were deleted by the server (interest retention) and are not its any more."""
        self.log.error("a sink's nats consumer is gone from the server (deleted?); declaring it again: records "
                       "stored meanwhile that no other sink reads are lost to it, the rest reach it again (same "
                       "ids)", sink=sink, consumer=self._durable(sink))
        await self._js.add_consumer(self.stream, self._consumer_config(sink))

    async def _watch_for_stall(self, sink: str, consumer: Any) -> None:
        """A stall: records wait to be handed out (and the consumer may hand them out), the sink
        asks for them, and gets none for ``stall_seconds``."""
        now = time.monotonic()
        asking = now - self._asked_at.get(sink, 0.0) < FETCH_TIMEOUT_SECONDS + 2 * PROBE_SECONDS
        if not (asking and consumer.num_pending > 0 and consumer.num_ack_pending < MAX_ACK_PENDING):
            self._handed_at[sink] = now  # nothing to hand out, or the sink is paused: nothing is late
            self._stalls.pop(sink, None)
            return
        if getattr(consumer, "paused", False):
            if sink not in self._stalls:
                self.log.error("a sink's nats consumer is paused on the server; its records wait", sink=sink,
                               consumer=consumer.name, pending=consumer.num_pending)
            self._stalls[sink] = (f"its consumer {consumer.name} is paused on the server (nats consumer pause); "
                                  f"{consumer.num_pending} records wait: resume it (nats consumer resume)")
            return
        silent = now - self._handed_at[sink]
        if silent < self.config.stall_seconds:
            return
        self._stalls[sink] = (f"{consumer.num_pending} records waited and the consumer {consumer.name} handed out "
                              f"none for {silent:.0f} s (buffer.stall_seconds); bound again")
        self.log.error("a sink's nats consumer stalled; binding it again", sink=sink, consumer=consumer.name,
                       pending=consumer.num_pending, silent_seconds=round(silent))
        with contextlib.suppress(Exception):
            await self._subs[sink].stop()
        await self._nak(sink, self._take_arrived(sink))  # not what the sink holds: it acks those (by reply)
        self._subs[sink] = await self._consumer(sink)
        self._handed_at[sink] = now  # the new binding gets stall_seconds of its own

    def stalls(self) -> dict[str, str]:
        return dict(self._stalls)

    # records ---------------------------------------------------------------------------------
    async def append(self, records: Sequence[NewRecord], checkpoint: tuple[str, bytes] | None = None) -> None:
        if self._publisher is None or self._nc is None or not self._nc.is_connected:
            self.healthy = False
            raise BufferUnavailable("nats is not connected")
        timeout = self.config.publish_timeout_seconds
        try:
            await self._publisher.publish(self._messages(records))
            if checkpoint is not None:
                with anyio.fail_after(timeout):
                    await self._kv.put(_kv_key(checkpoint[0]), checkpoint[1])
        except TimeoutError:
            raise self._timed_out() from None
        except nats.js.errors.APIError as exc:
            raise BufferUnavailable(f"nats refused the checkpoint: {exc}") from exc
        except (OSError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BufferUnavailable(f"nats could not store the records: {type(exc).__name__}") from exc
        self.healthy = True  # no notify(): a read waits on the server, not on ``wait``

    def append_soon(self, records: Sequence[NewRecord], done: Callable[[BaseException | None], None]) -> bool:
        if self._publisher is None or self._nc is None:
            raise BufferUnavailable("the nats buffer is closed")
        if not self._nc.is_connected:
            return False  # ``append`` says why
        self._publisher.publish_soon(self._messages(records), functools.partial(self._published, done))
        return True

    def _published(self, done: Callable[[BaseException | None], None], error: BaseException | None) -> None:
        if error is None:
            self.healthy = True
        elif isinstance(error, TimeoutError):
            error = self._timed_out()
        done(error)

    def _timed_out(self) -> BufferUnavailable:
        self.healthy = False
        return BufferUnavailable(f"nats did not acknowledge within {self.config.publish_timeout_seconds:g} s "
                                 "(publish_timeout_seconds): the stream has no leader or no quorum now")

    def _messages(self, records: Sequence[NewRecord]) -> list[Message]:
        return [(self._subject(r.source), r.body, self._headers(r)) for r in records]

    def _subject(self, source: str) -> str:
        subject = self._subjects.get(source)
        if subject is None:
            subject = self._subjects[source] = f"{self.stream}.records.{_token(source)}"
        return subject

    @staticmethod
    def _headers(record: NewRecord) -> dict[str, str]:
        headers = {"Nats-Msg-Id": record.id, HEADER_SOURCE: record.source, HEADER_RECEIVED: repr(record.received_at)}
        if record.only_sink is not None:
            headers[HEADER_ONLY_SINK] = record.only_sink
        return headers

    async def read(self, sink: str, limit: int) -> list[Record]:
        self._asked_at[sink] = time.monotonic()
        consumer = self._subs[sink]
        try:
            messages = await consumer.fetch(limit, FETCH_TIMEOUT_SECONDS)
        except (OSError, nats.errors.Error) as exc:
            self.log.warning("nats fetch failed", sink=sink, error=type(exc).__name__)
            await anyio.sleep(FETCH_TIMEOUT_SECONDS)
            return []
        if consumer.refusal != self._refusals.get(sink):
            self._refusals[sink] = consumer.refusal
            if consumer.refusal is not None:
                self.log.warning("nats ended a fetch of the sink's consumer; asking again", sink=sink,
                                 status=consumer.refusal)
        if messages:
            self._handed_at[sink] = time.monotonic()
            self._stalls.pop(sink, None)
        held = self._held[sink]
        records = []
        for msg in messages:
            seq = stream_sequence(msg.reply)
            headers = msg.headers or {}
            held[seq] = msg
            record_id = headers.get(HEADER_RECORD_ID) or headers.get("Nats-Msg-Id", str(seq))
            records.append(Record(seq, record_id, headers.get(HEADER_SOURCE, ""),
                                  float(headers.get(HEADER_RECEIVED, "0")), msg.data, headers.get(HEADER_ONLY_SINK)))
        return records

    async def wait(self, timeout: float) -> None:
        """``read`` itself waited for new records on the server."""

    async def ack(self, sink: str, seqs: Sequence[int]) -> None:
        held = self._held[sink]
        for seq in seqs:
            msg = held.pop(seq, None)
            if msg is not None:
                try:
                    await msg.ack()
                except (OSError, nats.errors.Error) as exc:  # redelivered after ack_wait: same ids
                    self.log.warning("nats ack failed", sink=sink, error=type(exc).__name__)

    async def rewind(self, sink: str) -> None:
        await self._nak_all(sink)

    async def dead_letter(self, sink: str, record: Record, reason: str, attempts: int) -> None:
        headers = {HEADER_SINK: sink, HEADER_REASON: " ".join(reason.split())[:4000], HEADER_ATTEMPTS: str(attempts),
                   HEADER_RECORD_ID: record.id, HEADER_SOURCE: record.source,
                   HEADER_RECEIVED: repr(record.received_at)}
        try:
            await self._js.publish(f"{self.stream}.dlq.{_token(sink)}", record.body, headers=headers)
            msg = self._held.get(sink, {}).pop(record.seq, None)
            if msg is not None:
                await msg.term()
        except (OSError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BufferUnavailable(f"cannot store the dead letter in nats: {type(exc).__name__}") from exc

    def lag(self) -> dict[str, int]:
        return {sink: max(0, self._pending[sink]) + len(self._unread(sink)) for sink in self._subs}

    # checkpoints and dead letters --------------------------------------------------------------
    async def checkpoint(self, name: str) -> bytes | None:
        try:
            entry = await self._kv.get(_kv_key(name))
        except nats.js.errors.KeyNotFoundError:
            return None
        return bytes(entry.value) if entry.value is not None else None

    async def dead_letters(self, ids: Sequence[int] = ()) -> list[DeadLetter]:
        if not ids:
            state = (await self._js.stream_info(self.dlq_stream)).state
            ids = range(state.first_seq, state.last_seq + 1) if state.messages else []
        letters = []
        for seq in ids:
            try:
                raw = await self._js.get_msg(self.dlq_stream, seq)
            except nats.js.errors.NotFoundError:
                continue
            h = raw.headers or {}
            failed_at = raw.time.timestamp() if getattr(raw, "time", None) else time.time()
            letters.append(DeadLetter(seq, h.get(HEADER_SINK, "?"), h.get(HEADER_RECORD_ID, "?"),
                                      h.get(HEADER_SOURCE, "?"), float(h.get(HEADER_RECEIVED, "0")), raw.data or b"",
                                      h.get(HEADER_REASON, ""), int(h.get(HEADER_ATTEMPTS, "1")), failed_at))
        return letters

    async def replay(self, ids: Sequence[int] = ()) -> int:
        letters = await self.dead_letters(ids)
        for letter in letters:  # the record keeps its id (and its messages theirs); the dedup key is new
            replayed = NewRecord(letter.record_id, letter.source, letter.received_at, letter.body, letter.sink)
            headers = self._headers(replayed) | {"Nats-Msg-Id": f"{letter.record_id}-replay-{letter.id}",
                                                 HEADER_RECORD_ID: letter.record_id}
            await self._js.publish(self._subject(letter.source), letter.body, headers=headers)
            await self._js.delete_msg(self.dlq_stream, letter.id)
        return len(letters)

    async def purge(self, ids: Sequence[int] = ()) -> int:
        letters = await self.dead_letters(ids)
        for letter in letters:
            await self._js.delete_msg(self.dlq_stream, letter.id)
        return len(letters)


def _kv_key(name: str) -> str:
    return re.sub(r"[^-/_=.a-zA-Z0-9]", ".", name)
