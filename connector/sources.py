"""What a polling source gets from the runtime: a way to store records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .buffer import Buffer
from .intake import Intake


@dataclass(frozen=True)
class SourceContext:
    """Handed to ``PollingSource.run``: ``append`` stores records durably, then returns."""

    name: str
    intake: Intake
    buffer: Buffer

    async def append(self, records: Sequence[Any]) -> None:
        """Store decoded records (canonically encoded, with deterministic ids)."""
        await self.intake.store(self.name, records)
