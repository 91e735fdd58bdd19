"""Intake: turns what sources accepted into stored records with deterministic ids.

``PollingContext`` is the ``connector.SourceContext`` a polling source gets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from .. import ids, metrics
from ..buffer import Buffer, NewRecord
from ..logging import logger
from ..tap import TapHub


class PollOutcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a polling source's last poll came to (``/status``): records stored, or a failure."""

    at: float
    stored: int | None = None
    error: str | None = None


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

    async def store(self, source: str, records: Sequence[Any], checkpoint: bytes | None = None) -> None:
        """Encode ``records`` canonically, give them ids, and return once the buffer stored them.

        A polling source's ``checkpoint`` is stored in the same transaction.
        """
        if not records and checkpoint is None:
            return
        new = self.prepare(source, records)
        await self.buffer.append(new, None if checkpoint is None else (checkpoint_name(source), checkpoint))
        self.stored(source, new)

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
        self._log.warning("poll failed; the source retries", reason=reason)
        metrics.SOURCE_ERRORS.labels(self.name).inc()
        self._intake.polls[self.name] = PollOutcome(time.time(), error=reason)

    def pause(self, reason: str) -> None:
        if self._intake.paused.get(self.name) is None:
            self._log.error("source paused", reason=reason)
            metrics.SOURCE_PAUSED.labels(self.name).set(1)
        self._intake.paused[self.name] = reason

    def resume(self) -> None:
        if self._intake.paused.pop(self.name, None) is not None:
            self._log.info("source resumed")
            metrics.SOURCE_PAUSED.labels(self.name).set(0)
