"""A polling source under test, in process: a ``SourceContext`` in memory that can crash at a
chosen append, and a run of the source until a condition holds.

    ctx = FakeSourceContext(crash_at=2)            # the 2nd append dies before it stores
    crashed = run_polling_source(config, ctx, until=lambda c: len(c.records) >= 10)
    assert isinstance(crashed, SourceCrashed)
    run_polling_source(config, ctx, until=lambda c: len(c.records) >= 10)   # resumes at the checkpoint

The records get the ids the daemon gives them (``Intake.prepare``); the context outlives a run,
as the buffer outlives a process, so a second run is the source restarted.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal

import anyio
import msgspec

from ..buffer import NewRecord
from ..components import PollingSource, SourceConfig
from ..ingress.intake import Intake
from .kit import RecordedPauses, build_context


class SourceCrashed(Exception):
    """The crash a ``FakeSourceContext`` injects: as if the process died inside ``append``."""


class FakeSourceContext(RecordedPauses):
    """``connector.SourceContext`` in memory: what was stored, the checkpoint, pauses and errors.

    ``crash_at=n`` makes the n-th append (counting from 1 over the context's life) raise
    ``SourceCrashed``: with ``crash="before"`` (the default) nothing of it is stored, as if the
    process died between fetching a page and storing it; with ``crash="after"`` its records and
    checkpoint are stored first, as if the process died right after.
    """

    def __init__(self, name: str = "source", crash_at: int | None = None,
                 crash: Literal["before", "after"] = "before", checkpoint: bytes | None = None):
        super().__init__()
        self.name = name
        self.crash_at = crash_at
        self.crash = crash
        self.records: list[NewRecord] = []
        self.saved: bytes | None = checkpoint
        self.appends = 0  # calls of append, crashed ones included
        self.errors: list[str] = []

    async def append(self, records: Sequence[Any], checkpoint: bytes | None = None) -> None:
        self.appends += 1
        crashing = self.crash_at == self.appends
        if crashing and self.crash == "before":
            raise SourceCrashed(f"crash injected before append #{self.appends} stored")
        if records or checkpoint is not None:
            self.records.extend(Intake.prepare(self.name, records))
            if checkpoint is not None:
                self.saved = bytes(checkpoint)
        if crashing:
            raise SourceCrashed(f"crash injected after append #{self.appends} stored")

    async def checkpoint(self) -> bytes | None:
        return self.saved

    def error(self, reason: str) -> None:
        self.errors.append(reason)

    def describe(self) -> str:
        """What the source did with this context, for a failing test's message."""
        return (f"it stored {len(self.records)} records in {self.appends} appends, checkpoint {self.saved!r}; "
                f"paused: {self.paused!r} (pauses: {self.pauses[-3:]}); errors: {self.errors[-3:]}")

    def values(self) -> list[Any]:
        """The stored records' values, in order."""
        return [msgspec.json.decode(r.body) for r in self.records]

    def ids(self) -> list[str]:
        """The stored records' ids, in order."""
        return [r.id for r in self.records]


def build_polling_source(config: SourceConfig, name: str = "source") -> PollingSource:
    """``config.build`` as the daemon calls it, checked to be a ``PollingSource``."""
    source = config.build(build_context(name, kind="source"))
    if not isinstance(source, PollingSource):
        raise TypeError(f"{type(config).__qualname__} builds a {type(source).__name__}, not a PollingSource")
    source.name = name
    return source


def run_polling_source(config: SourceConfig, ctx: FakeSourceContext,
                       until: Callable[[FakeSourceContext], Any],
                       meanwhile: Callable[[FakeSourceContext], Coroutine[Any, Any, None]] | None = None,
                       timeout: float = 30.0) -> BaseException | None:
    """Build the source from ``config`` and run it on ``ctx`` until ``until(ctx)`` holds (then it
    is cancelled, as the daemon stops it) or ``run`` raises or returns; ``meanwhile(ctx)`` runs
    beside it (break and repair the API). Returns what ``run`` raised (a ``SourceCrashed``
    included), else None. Fails (an ``AssertionError`` saying what the source did) after
    ``timeout`` seconds."""
    source = build_polling_source(config, ctx.name)
    raised: list[BaseException] = []

    async def run_source(scope: anyio.CancelScope) -> None:
        try:
            await source.run(ctx)
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            raised.append(exc)
        scope.cancel()

    async def main() -> None:
        with anyio.move_on_after(timeout) as deadline:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_source, tg.cancel_scope)
                if meanwhile is not None:
                    tg.start_soon(meanwhile, ctx)
                while not until(ctx):
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
        if deadline.cancelled_caught:
            raise AssertionError(f"the source ran {timeout:g} s without reaching the test's condition; {ctx.describe()}")

    anyio.run(main)
    return raised[0] if raised else None
