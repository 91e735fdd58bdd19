"""Recent rates kept in the daemon's memory: records received per source and messages delivered per
sink, a sample every few seconds over the last minutes, for the console's charts."""

from __future__ import annotations

import collections
import time
from typing import Any

SAMPLE_SECONDS = 5.0
KEEP_SAMPLES = 120  # ten minutes


class RateHistory:
    """Turns running totals, given each sample, into per-second rates, the newest last."""

    def __init__(self, every: float = SAMPLE_SECONDS, keep: int = KEEP_SAMPLES):
        self.every = every
        self._times: collections.deque[float] = collections.deque(maxlen=keep)
        self._rates: dict[str, dict[str, collections.deque[float]]] = {"sources": {}, "sinks": {}}
        self._last: tuple[float, dict[str, dict[str, float]]] | None = None

    def sample(self, totals: dict[str, dict[str, float]], at: float | None = None, clock: float | None = None) -> None:
        """Record ``totals`` (``{"sources": {name: received}, "sinks": {name: delivered}}``) as of the
        wall-clock time ``at`` (shown) and the monotonic ``clock`` (for rates). A total that fell below
        half counts from zero again (a delivery process restarted); one a little lower is a stale
        reading, a rate of 0."""
        at = time.time() if at is None else at
        clock = time.monotonic() if clock is None else clock
        if self._last is not None:
            then, before = self._last
            elapsed = max(clock - then, 1e-3)
            self._times.append(at)
            for kind, counts in totals.items():
                series = self._rates[kind]
                for name, count in counts.items():
                    previous = before.get(kind, {}).get(name, 0.0)
                    rate = (count - previous if count >= previous else count if count < previous / 2 else 0) / elapsed
                    if name not in series:
                        series[name] = collections.deque([0.0] * (len(self._times) - 1), maxlen=self._times.maxlen)
                    series[name].append(round(rate, 3))
        self._last = (clock, {kind: dict(counts) for kind, counts in totals.items()})

    def view(self) -> dict[str, Any]:
        """What ``/rates`` answers: sample times and, per source and sink, its rate at each."""
        return {"every_seconds": self.every, "times": list(self._times),
                **{kind: {name: list(rates) for name, rates in series.items()} for kind, series in self._rates.items()}}
