"""What a polling source gets from the runtime: a way to store records and to say it is failing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import metrics
from .buffer import Buffer
from .components import logger
from .intake import Intake, checkpoint_name


@dataclass(frozen=True)
class SourceContext:
    """Handed to ``PollingSource.run``: store records durably, with the source's checkpoint."""

    name: str
    intake: Intake
    buffer: Buffer

    async def append(self, records: Sequence[Any], checkpoint: bytes | None = None) -> None:
        """Store decoded records (canonically, with deterministic ids); return once durable.

        ``checkpoint`` (the source's position, e.g. an API cursor) is saved in the same
        transaction, so after a crash the source resumes exactly after what was stored.
        """
        await self.intake.store(self.name, records, checkpoint)

    async def checkpoint(self) -> bytes | None:
        """The checkpoint last stored with ``append``, or None on the first run."""
        return await self.buffer.checkpoint(checkpoint_name(self.name))

    def pause(self, reason: str) -> None:
        """The source cannot fetch for a reason the user must fix (a refused API key): the daemon
        is not ready and ``/readyz`` names the source with ``reason`` until ``resume``."""
        if self.intake.paused.get(self.name) is None:
            logger(self.name).error("source paused", reason=reason)
            metrics.SOURCE_PAUSED.labels(self.name).set(1)
        self.intake.paused[self.name] = reason

    def resume(self) -> None:
        """The source fetches again."""
        if self.intake.paused.pop(self.name, None) is not None:
            logger(self.name).info("source resumed")
            metrics.SOURCE_PAUSED.labels(self.name).set(0)
