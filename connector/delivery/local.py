"""The delivery side of a daemon: what it needs of the sinks, wherever they run.

``Delivery`` is what the rest of a process sees: tasks to run, a drain, each sink's state, and
(when the sinks run in another process) that process's metrics and taps. ``LocalDelivery`` runs
the sink pipelines in this process; ``RemoteDelivery`` (``process.py``) runs them in a
second one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from ..buffer import Buffer
from ..graph import Sinks
from ..tap import TapHub
from .pipeline import READ_BATCH, SinkPipeline


@dataclass(frozen=True)
class Task:
    """Work a daemon part runs, supervised under ``name``: a crash stops the daemon with exit 1;
    with ``ends_daemon``, so does its return."""

    name: str
    run: Callable[[], Awaitable[Any]]
    ends_daemon: bool = False


class SinkState(msgspec.Struct):
    """One sink's state, as ``/status`` shows it."""

    lag: int = 0
    delivered: float = 0
    dead_letters: float = 0
    paused: str | None = None
    stalled: str | None = None  # its records wait in the buffer and are not handed out (Buffer.stalls)
    replayed: list[str] = []  # record ids of replayed dead letters it delivered lately, newest last
    last_error: str | None = None
    last_error_at: float | None = None
    updated_at: float = 0.0


class Delivery(Protocol):
    """The sinks, as the process that serves ``/status`` and ``/metrics`` sees them."""

    reading_sinks: list[str]  # the sinks whose cursors this process keeps in the buffer

    def tasks(self) -> list[Task]: ...

    async def drain(self) -> None:
        """Deliver what is stored, then stop (the caller bounds it by the grace period)."""

    async def sink_status(self) -> dict[str, Any]:
        """Each sink's ``SinkState`` as a dict."""

    async def metrics(self) -> str | None:
        """Another process's metrics to merge into this one's (None: no such process)."""

    def tap(self, component: str | None) -> AsyncIterator[bytes] | None:
        """Tapped lines from another process (None: taps are local)."""

    def lag(self) -> dict[str, int]:
        """Per sink, records stored after its committed cursor."""


class LocalDelivery:
    """The sink pipelines, run in this process."""

    def __init__(self, buffer: Buffer, sinks: Sinks, taps: TapHub, read_batch: int = READ_BATCH):
        self.buffer = buffer
        self.pipelines = [SinkPipeline(name, sink, sinks.routes[name], buffer, taps, _tapped_by(name, sinks.routes),
                                       read_batch, sinks.rebuild.get(name)) for name, sink in sinks.sinks.items()]
        self.reading_sinks = [p.name for p in self.pipelines]

    def tasks(self) -> list[Task]:
        return [Task(p.name, p.run) for p in self.pipelines]

    async def drain(self) -> None:
        for pipeline in self.pipelines:
            pipeline.drain()
        for pipeline in self.pipelines:
            await pipeline.finished.wait()

    async def sink_status(self) -> dict[str, Any]:
        return {name: msgspec.structs.asdict(state) for name, state in self.states().items()}

    def states(self) -> dict[str, SinkState]:
        """The state of each sink this process runs."""
        lag = self.buffer.lag()
        stalls = self.buffer.stalls()
        states = {}
        for p in self.pipelines:
            error, at = p.acks.last_error or (None, None)
            states[p.name] = SinkState(
                lag=lag.get(p.name, 0),
                delivered=p.acks.delivered, dead_letters=p.acks.dead_lettered,
                paused=p.acks.paused_reason, stalled=stalls.get(p.name), replayed=list(p.acks.replayed),
                last_error=error, last_error_at=at, updated_at=time.time())
        return states

    async def metrics(self) -> str | None:
        return None

    def tap(self, component: str | None) -> AsyncIterator[bytes] | None:
        return None

    def lag(self) -> dict[str, int]:
        return self.buffer.lag()


def _tapped_by(sink: str, routes: Mapping[str, Mapping[str, Sequence[Any]]]) -> frozenset[str]:
    """The mappers whose output ``sink``'s pipeline shows to taps: those no earlier sink reads."""
    earlier: set[str] = set()
    for name, sink_routes in routes.items():
        mappers = {r.name for rs in sink_routes.values() for r in rs if r.mapper is not None}
        if name == sink:
            return frozenset(mappers - earlier)
        earlier |= mappers
    return frozenset()
