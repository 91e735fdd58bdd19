"""The units that flow through connector: raw records, and the envelopes sinks deliver."""

from __future__ import annotations

from typing import Any

import msgspec


class Record(msgspec.Struct, frozen=True, gc=False):
    """One raw record as the buffer stores it.

    ``body`` is the decoded record in canonical JSON (sorted keys, no insignificant whitespace);
    ``id`` derives from ``source`` and ``body``; ``seq`` is the buffer's position for it.
    ``only_sink`` is set on a replayed dead letter: only that sink reads it.
    """

    seq: int
    id: str
    source: str
    received_at: float
    body: bytes
    only_sink: str | None = None


class Envelope(msgspec.Struct, gc=False):
    """One output message on its way to a sink.

    ``id`` is deterministic (record id, mapper, index), so a redelivery carries the same id;
    ``payload`` is what the mapper returned (or the raw record as ``msgspec.Raw``); a sink may
    stamp it with what it adds on the wire (the Segment sink: ``messageId``, ``context.library``).
    """

    id: str
    payload: Any
    record: Record
    index: int = 0


class DeadLetter(msgspec.Struct, frozen=True):
    """A record that one sink refused permanently, with the reason; replayable to that sink."""

    id: int
    sink: str
    record_id: str
    source: str
    received_at: float
    body: bytes
    reason: str
    attempts: int
    failed_at: float


class DeadLetterView(msgspec.Struct):
    """A dead letter as the admin API sends it and the command line reads it: the body as the JSON it is."""

    id: int
    sink: str
    record_id: str
    source: str
    received_at: float
    failed_at: float
    attempts: int
    reason: str
    body: msgspec.Raw

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterView:
        return cls(letter.id, letter.sink, letter.record_id, letter.source, letter.received_at, letter.failed_at,
                   letter.attempts, letter.reason, msgspec.Raw(letter.body))

    def letter(self) -> DeadLetter:
        return DeadLetter(self.id, self.sink, self.record_id, self.source, self.received_at, bytes(self.body),
                          self.reason, self.attempts, self.failed_at)


class DeadLetterList(msgspec.Struct):
    """The answer of the admin API's ``GET /dead-letters``: the letters asked for (at most
    ``limit``) and how many matched."""

    dead_letters: list[DeadLetterView]
    total: int
