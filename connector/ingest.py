"""The ingest side of a daemon: the HTTP ingress and the polling sources, storing into the buffer.

It also answers for the whole daemon on ``/readyz``, ``/status`` and ``/metrics``, asking the
delivery side (in this process or the other one) about the sinks.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio

from .buffer import Buffer
from .config import Config
from .delivery import Delivery, Task
from .graph import Sources
from .intake import Intake, PollingContext
from .httpserver import HTTPServer
from .server import IngressApp
from .tap import TapHub


class Ingest:
    """Webhook sources on the ingress (served on ``listener``) and polling sources, in one process."""

    def __init__(self, config: Config, buffer: Buffer, sources: Sources, delivery: Delivery, taps: TapHub,
                 listener: socket.socket):
        self.config = config
        self.buffer = buffer
        self.sources = sources
        self.delivery = delivery
        self.taps = taps
        self.listener = listener
        self.intake = Intake(buffer, taps)
        self.app = IngressApp(sources.webhook, self.intake, config.server, self)
        self._server: HTTPServer | None = None
        self._served = anyio.Event()
        self._polling: list[anyio.CancelScope] = []  # one per running polling source

    def tasks(self) -> list[Task]:
        return [Task("server", self._serve),
                *(Task(source.name, lambda s=source: self._poll(s)) for source in self.sources.polling)]

    async def drain(self) -> None:
        """Stop taking input: answer 503 to new deliveries, let in-flight ones finish, stop polling."""
        self.intake.stopping = True
        for scope in self._polling:
            scope.cancel()
        if self._server is not None:
            await self._server.shutdown()
            await self._served.wait()

    async def _poll(self, source: Any) -> None:
        with anyio.CancelScope() as scope:
            self._polling.append(scope)
            await source.run(PollingContext(source.name, self.intake))

    async def _serve(self) -> None:
        self._server = HTTPServer(self.app, self.listener, whole_body=self.app)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.app.watch_body_reads)
                await self._server.serve()
                tg.cancel_scope.cancel()
        finally:
            self._served.set()

    # what the ingress shows of the daemon (server.Control) -----------------------------------
    async def readiness(self) -> dict[str, str]:
        """What keeps the daemon from being ready, by component (empty when ready)."""
        problems: dict[str, str] = {}
        if not self.buffer.healthy:
            problems["buffer"] = "the buffer cannot store records"
        problems.update(await self.delivery.readiness())
        problems.update(self.intake.paused)
        if self.intake.stopping:
            problems["daemon"] = "shutting down"
        return problems

    async def other_process_metrics(self) -> str | None:
        return await self.delivery.metrics()

    def other_process_tap(self, component: str | None) -> AsyncIterator[bytes] | None:
        if component in self.sources.names():
            return None
        return self.delivery.tap(component)

    async def status(self) -> dict[str, Any]:
        """Per sink: lag, delivered, dead letters, paused, last error; and the buffer's state."""
        return {"running": True, "buffer": {"bytes": self.buffer.stored_bytes, "healthy": self.buffer.healthy},
                "sinks": await self.delivery.sink_status()}
