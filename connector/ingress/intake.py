"""Intake: turns what sources accepted into stored records with deterministic ids, through one
call for every source (``submit``), and says why when they cannot be stored.

``PollingContext`` is the ``connector.SourceContext`` a polling source gets.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import msgspec

from .. import ids, metrics
from ..buffer import Buffer, NewRecord
from ..errors import BufferFull, BufferUnavailable
from ..logging import logger, redact
from ..tap import TapHub


class PollOutcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a polling source's last poll came to (``/status``): records stored, or a failure."""

    at: float
    stored: int | None = None
    error: str | None = None


StorageError = BufferFull | BufferUnavailable


def storage_error(error: BaseException) -> StorageError:
    """What a failed store tells the sender and the log: the buffer's own refusal, its cause named
    ("the sqlite buffer could not store the records: disk I/O error")."""
    if isinstance(error, BufferFull):
        return error
    if isinstance(error, BufferUnavailable):
        message, cause = str(error), error.__cause__
    else:
        message, cause = "the records could not be stored", error
    if cause is not None:
        message = f"{message}: {str(cause) or type(cause).__name__}"
    unavailable = BufferUnavailable(message)
    unavailable.__cause__ = cause
    return unavailable


def checkpoint_name(source: str) -> str:
    """The buffer checkpoint that holds a polling source's position."""
    return f"source:{source}"


class Intake:
    """The sources' one way into the buffer; refuses new input once the daemon is stopping."""

    def __init__(self, buffer: Buffer, taps: TapHub):
        self.buffer = buffer
        self.taps = taps
        self.stopping = False
        self.paused: dict[str, str] = {}  # polling sources that cannot fetch, with the reason
        self.received: dict[str, int] = {}  # records stored, by source, since this process started
        self.polls: dict[str, PollOutcome] = {}  # polling sources: what their last poll came to
        self._received: dict[str, Any] = {}

    def submit(self, source: str, records: Sequence[Any], done: Callable[[StorageError | None], None],
               checkpoint: bytes | None = None) -> Awaitable[None] | None:
        """Store ``records`` (canonical bodies, deterministic ids) and a polling source's
        ``checkpoint`` with them; then call ``done(None)`` (they are stored, counted and tapped)
        or ``done(error)``, a ``BufferFull`` or ``BufferUnavailable`` whose message says why.

        Returns None when the buffer took them to commit with its next batch (``done`` then runs
        from the commit, on the event loop: no task a request), else a coroutine to await that
        stores them and calls ``done``.
        """
        new = self.prepare(source, records)
        finished = functools.partial(self._finished, source, new, done)
        if checkpoint is None:
            try:
                if self.buffer.append_soon(new, finished):
                    return None
            except Exception as exc:  # noqa: BLE001 - the buffer is closed: said through done, as any failure
                finished(exc)
                return None
        return self._append(new, None if checkpoint is None else (checkpoint_name(source), checkpoint), finished)

    def _finished(self, source: str, new: list[NewRecord], done: Callable[[StorageError | None], None],
                  error: BaseException | None) -> None:
        if error is None:
            self.stored(source, new)
            done(None)
        else:
            done(storage_error(error))

    async def _append(self, new: list[NewRecord], checkpoint: tuple[str, bytes] | None,
                      finished: Callable[[BaseException | None], None]) -> None:
        try:
            await self.buffer.append(new, checkpoint)
        except Exception as exc:  # noqa: BLE001 - handed to done, with its cause
            finished(exc)
        else:
            finished(None)

    async def store(self, source: str, records: Sequence[Any], checkpoint: bytes | None = None) -> None:
        """``submit``, awaited: return once stored, or raise the ``StorageError`` that says why."""
        if not records and checkpoint is None:
            return
        outcome: list[StorageError | None] = []
        finished = anyio.Event()

        def done(error: StorageError | None) -> None:
            outcome.append(error)
            finished.set()

        pending = self.submit(source, records, done, checkpoint)
        if pending is not None:
            await pending
        await finished.wait()
        if outcome[0] is not None:
            raise outcome[0]

    @staticmethod
    def prepare(source: str, records: Sequence[Any]) -> list[NewRecord]:
        """``records`` as the buffer keeps them: canonical bodies, deterministic ids."""
        received_at = time.time()
        new = []
        for record in records:
            body = ids.canonical(record)
            new.append(NewRecord(ids.record_id(source, body), source, received_at, body))
        return new

    def stored(self, source: str, new: list[NewRecord]) -> None:
        """The buffer stored ``new``: show it to taps, count it."""
        if self.taps.active:
            self.taps.publish(source, ((r.id, msgspec.Raw(r.body)) for r in new))
        counter = self._received.get(source)
        if counter is None:
            counter = self._received[source] = metrics.RECEIVED.labels(source)
        counter.inc(len(new))
        self.received[source] = self.received.get(source, 0) + len(new)


class PollingContext:
    """``connector.SourceContext`` for one polling source: its records go through ``intake``."""

    def __init__(self, name: str, intake: Intake):
        self.name = name
        self._intake = intake
        self._log = logger(name)

    async def append(self, records: Sequence[Any], checkpoint: bytes | None = None) -> None:
        await self._intake.store(self.name, records, checkpoint)
        self._intake.polls[self.name] = PollOutcome(time.time(), stored=len(records))

    async def checkpoint(self) -> bytes | None:
        return await self._intake.buffer.checkpoint(checkpoint_name(self.name))

    def error(self, reason: str) -> None:
        reason = redact(reason)  # shown in /status: a crash's message may quote a request with its key
        self._log.warning("poll failed; the source retries", reason=reason)
        metrics.SOURCE_ERRORS.labels(self.name).inc()
        self._intake.polls[self.name] = PollOutcome(time.time(), error=reason)

    def pause(self, reason: str) -> None:
        reason = redact(reason)
        self._intake.polls[self.name] = PollOutcome(time.time(), error=reason)
        if self._intake.paused.get(self.name) is None:
            self._log.error("source paused", reason=reason)
            metrics.SOURCE_PAUSED.labels(self.name).set(1)
        self._intake.paused[self.name] = reason

    def resume(self) -> None:
        if self._intake.paused.pop(self.name, None) is not None:
            self._log.info("source resumed")
            metrics.SOURCE_PAUSED.labels(self.name).set(0)
