"""The newest committed records, kept in memory so that sinks that keep up read without a query."""

from __future__ import annotations

from collections import deque
from typing import Any

from ...records import Record

TAIL_RECORDS = 20_000


class Tail:
    """A contiguous run of the last ``TAIL_RECORDS`` committed records."""

    def __init__(self) -> None:
        self._records: deque[Record] = deque(maxlen=TAIL_RECORDS)

    def remember(self, rows: list[tuple[Any, ...]], last_seq: int) -> None:
        """Keep the committed rows (seqs up to ``last_seq``); a gap empties the tail first."""
        first_seq = last_seq - len(rows) + 1
        if self._records and self._records[-1].seq != first_seq - 1:
            self._records.clear()
        self._records.extend(Record(seq, *row) for seq, row in zip(range(first_seq, last_seq + 1), rows))

    def after(self, seq: int, limit: int) -> list[Record] | None:
        """Up to ``limit`` records after ``seq``, or None when the tail does not reach back to it."""
        tail = self._records
        if not tail or seq + 1 < tail[0].seq:
            return None
        start = seq + 1 - tail[0].seq
        if start >= len(tail):
            return []
        return [tail[i] for i in range(start, min(start + limit, len(tail)))]
