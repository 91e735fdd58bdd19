"""What a polling source gets from the runtime: a way to store records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .buffer import Buffer
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
