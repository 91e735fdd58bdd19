"""The ingest side of a daemon: the two listeners and the polling sources, storing into the buffer.

The public listener serves the webhook sources (``ingress/webhooks.py``); the admin listener
answers for the whole daemon on ``/status``, ``/tap``, ``/metrics`` and the dead letters
(``ingress/admin.py``), asking the delivery side (in this process or the other one) about the sinks.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from ..backoff import full_jitter
from ..buffer import Buffer
from ..components import PollingSource
from ..config import Config, ListenerConfig
from ..delivery.local import Delivery, Task
from ..graph import Sources
from ..ingress.admin import AdminApp
from ..ingress.httpserver import HTTPServer, Limits
from ..ingress.intake import Intake, PollingContext, checkpoint_name
from ..ingress.listening import Certificates
from ..ingress.webhooks import WebhookApp
from ..logging import logger
from ..rates import RateHistory
from ..tap import TapHub

CURSOR_SHOWN_CHARS = 200  # of a polling source's checkpoint, in /status
POLL_RESTART_INITIAL_SECONDS = 1.0  # a crashed polling source starts again after 1 s, then up to 2, 4... s
POLL_RESTART_MAX_SECONDS = 300.0


@dataclass
class Listener:
    """A bound socket, its TLS certificates (None: plain HTTP) and its connection bounds."""

    sock: socket.socket
    certificates: Certificates | None
    limits: Limits

    @classmethod
    def of(cls, sock: socket.socket, config: ListenerConfig, certificates: Certificates | None) -> Listener:
        limits = Limits(config.header_timeout_seconds, config.idle_timeout_seconds, config.max_connections,
                        config.max_header_bytes)
        return cls(sock, certificates, limits)

    def serve(self, app: Any, name: str, whole_body: Any = None) -> HTTPServer:
        tls = None if self.certificates is None else self.certificates.context
        return HTTPServer(app, self.sock, whole_body=whole_body, limits=self.limits, tls=tls, name=name)


class Ingest:
    """Webhook sources on the public listener, the admin routes on the admin listener, and the
    polling sources, in one process."""

    def __init__(self, config: Config, buffer: Buffer, sources: Sources, delivery: Delivery, taps: TapHub,
                 public: Listener, admin: Listener):
        self.buffer = buffer
        self.sources = sources
        self.delivery = delivery
        self.taps = taps
        self.intake = Intake(buffer, taps)
        self.webhooks = WebhookApp(sources.webhook, self.intake, config.server)
        self.server = public.serve(self.webhooks, "server", whole_body=self.webhooks)
        self.admin = AdminListener(admin.serve(AdminApp(self, config.admin.token), "admin"))
        self.certificates = [listener.certificates for listener in (public, admin) if listener.certificates]
        self.graph = {kind: {name: {"type": component.config.type_name(), "inputs": component.inputs}
                             for name, component in getattr(config, kind).items()}
                      for kind in ("sources", "mappers", "sinks")}
        self.rates = RateHistory()
        self._served = anyio.Event()
        self._polling: list[anyio.CancelScope] = []  # one per running polling source

    def tasks(self) -> list[Task]:
        return [Task("server", self._serve), Task("rates", self._sample_rates),
                *(Task(source.name, functools.partial(self._poll, source)) for source in self.sources.polling)]

    async def drain(self) -> None:
        """Stop taking input: answer 503 to new deliveries, let in-flight ones finish, stop polling."""
        self.intake.stopping = True
        for scope in self._polling:
            scope.cancel()
        await self.server.shutdown()
        await self._served.wait()

    def reload(self) -> None:
        """SIGHUP: read the listeners' certificates again."""
        for certificates in self.certificates:
            certificates.reload()

    async def _poll(self, source: PollingSource) -> None:
        """Run a polling source; a crash is logged and shown, and the source started again from its
        last checkpoint after a backoff (the rest of the daemon runs on)."""
        log = logger(source.name)
        context = PollingContext(source.name, self.intake)
        attempt = 0
        with anyio.CancelScope() as scope:
            self._polling.append(scope)
            while True:
                stored_before = self.intake.received.get(source.name, 0)
                try:
                    await source.run(context)
                except Exception as exc:  # noqa: BLE001 - a plugin's crash; its source starts over
                    if self.intake.received.get(source.name, 0) > stored_before:
                        attempt = 0  # it got somewhere before it crashed
                    delay = max(POLL_RESTART_INITIAL_SECONDS,
                                full_jitter(attempt, POLL_RESTART_INITIAL_SECONDS * 2, POLL_RESTART_MAX_SECONDS))
                    attempt += 1
                    reason = f"crashed: {type(exc).__name__}: {exc}"
                    log.error("polling source crashed; it starts again from its last checkpoint",
                              error=repr(exc), restart_in_seconds=round(delay, 1), exc_info=exc)
                    context.error(reason)
                    await anyio.sleep(delay)
                    continue
                log.info("polling source finished (its run returned)")
                return

    async def _serve(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.webhooks.watch_body_reads)
                await self.server.serve()
                tg.cancel_scope.cancel()
        finally:
            self._served.set()

    # what the admin listener shows of the daemon (admin.Daemon) --------------------------------
    def rate_history(self) -> dict[str, Any]:
        return self.rates.view()

    async def other_process_metrics(self) -> str | None:
        return await self.delivery.metrics()

    def other_process_tap(self, component: str | None) -> AsyncIterator[bytes] | None:
        if component in self.sources.names():
            return None
        return self.delivery.tap(component)

    async def status(self) -> dict[str, Any]:
        """Per sink: lag, delivered, dead letters, paused, last error; per source: received,
        refusals, paused; the buffer's state; whether a delivery can be stored now."""
        sources: dict[str, Any] = self.webhooks.source_status()
        for source in self.sources.polling:
            cursor = await self.buffer.checkpoint(checkpoint_name(source.name))
            outcome = self.intake.polls.get(source.name)
            sources[source.name] = {"received": self.intake.received.get(source.name, 0),
                                    "paused": self.intake.paused.get(source.name),
                                    "last_poll": None if outcome is None else outcome.at,
                                    "last_outcome": None if outcome is None else msgspec.to_builtins(outcome),
                                    "cursor": None if cursor is None else
                                    cursor.decode(errors="replace")[:CURSOR_SHOWN_CHARS]}
        sinks = await self.delivery.sink_status()
        waiting = [name for name, sink in sinks.items() if sink["lag"]]
        oldest = await self.buffer.oldest_pending(waiting) if waiting else {}
        for name, sink in sinks.items():
            sink["oldest_pending_at"] = oldest.get(name)
        return {"running": True, "ready": await self.webhooks.ready(),
                "buffer": {"bytes": self.buffer.stored_bytes, "healthy": self.buffer.healthy,
                           "location": self.buffer.location, "max_bytes": self.buffer.max_bytes,
                           "free_disk_bytes": self.buffer.free_disk_bytes()},
                "sinks": sinks, "sources": sources, "graph": self.graph}

    async def _sample_rates(self) -> None:
        """Feed the rate history (the console's charts) while the daemon runs; a sample that
        cannot be taken is skipped (the charts are no reason to stop a daemon)."""
        log = logger("rates")
        while True:
            try:
                sinks = await self.delivery.sink_status()
            except Exception as exc:  # noqa: BLE001 - a chart's gap, logged, is the whole cost
                log.warning("cannot sample the sinks' rates", error=str(exc) or type(exc).__name__)
            else:
                self.rates.sample({"sources": {name: float(self.intake.received.get(name, 0))
                                               for name in self.sources.names()},
                                   "sinks": {name: float(sink["delivered"] or 0) for name, sink in sinks.items()}})
            await anyio.sleep(self.rates.every)


class AdminListener:
    """The admin listener as a part of the daemon of its own: drained last, so that the drain of
    the ingress and of the sinks can be watched on it."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self._served = anyio.Event()

    def tasks(self) -> list[Task]:
        return [Task("admin", self._serve)]

    async def drain(self) -> None:
        await self.server.shutdown()
        await self._served.wait()

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        finally:
            self._served.set()
