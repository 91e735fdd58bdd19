"""The daemon: buffer, HTTP ingress, pollers and sink pipelines in one anyio task group.

Stopping (SIGTERM or SIGINT): the ingress stops taking requests (in-flight ones finish), pollers
are cancelled, then every sink drains what is stored for at most ``shutdown_grace_seconds``;
the process exits 0 and whatever was not delivered stays in the buffer. A component that
crashes is logged with its name and stops the daemon with exit code 1.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import uvicorn

from . import metrics
from .buffer import Buffer
from .components import logger
from .config import Config
from .graph import Graph
from .intake import Intake
from .pipeline import SinkPipeline
from .server import IngressApp
from .sources import SourceContext
from .tap import TapHub


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Daemon:
    """One running connector."""

    def __init__(self, config: Config, graph: Graph, buffer: Buffer):
        self.config = config
        self.graph = graph
        self.buffer = buffer
        self.taps = TapHub()
        self.intake = Intake(buffer, self.taps)
        self.pipelines = [SinkPipeline(name, sink, graph.routes[name], buffer, self.taps,
                                       _tapped_by(name, graph.routes))
                          for name, sink in graph.sinks.items()]
        self.log = logger("daemon")
        self.exit_code = 0
        self._stop = anyio.Event()
        self.server: _Server | None = None

    def readiness(self) -> dict[str, str]:
        """What keeps the daemon from being ready, by component (empty when ready)."""
        problems: dict[str, str] = {}
        if not self.buffer.healthy:
            problems["buffer"] = "the buffer cannot store records"
        for pipeline in self.pipelines:
            if pipeline.acks.paused_reason:
                problems[pipeline.name] = pipeline.acks.paused_reason
        if self.intake.stopping:
            problems["daemon"] = "shutting down"
        return problems

    def status(self) -> dict[str, Any]:
        """Per sink: lag, delivered, dead letters, paused, last error; and the buffer's state."""
        lag = self.buffer.lag()
        sinks = {}
        for p in self.pipelines:
            error, at = p.acks.last_error or (None, None)
            sinks[p.name] = {
                "lag": lag.get(p.name, 0),
                "delivered": metrics.sample("connector_component_sent_events_total", component=p.name),
                "dead_letters": metrics.sample("connector_dead_letters_total", sink=p.name),
                "paused": p.acks.paused_reason,
                "last_error": error,
                "last_error_at": at,
            }
        return {"running": True, "buffer": {"bytes": self.buffer.stored_bytes, "healthy": self.buffer.healthy},
                "sinks": sinks}

    async def run(self) -> int:
        await self.buffer.open(list(self.graph.sinks))
        metrics.watch_buffer(self.buffer.lag, lambda: self.buffer.stored_bytes)
        self.log.info("starting", listen=f"http://{self.config.server.host}:{self.config.server.port}",
                      webhooks={s.name: s.path for s in self.graph.webhook_sources},
                      sinks=list(self.graph.sinks), buffer=type(self.buffer).__name__)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_signals)
                tg.start_soon(self._supervise, "buffer", self.buffer.maintain)
                for pipeline in self.pipelines:
                    tg.start_soon(self._supervise, pipeline.name, pipeline.run)
                sources_scope = anyio.CancelScope()
                for source in self.graph.polling_sources:
                    tg.start_soon(self._run_polling, source, sources_scope)
                server_done = anyio.Event()
                tg.start_soon(self._supervise, "server", self._serve, server_done)
                await self._stop.wait()
                if self.exit_code == 0:
                    await self._shut_down(sources_scope, server_done)
                tg.cancel_scope.cancel()
        finally:
            await self.buffer.close()
        self.log.info("stopped", exit_code=self.exit_code)
        return self.exit_code

    async def _shut_down(self, sources_scope: anyio.CancelScope, server_done: anyio.Event) -> None:
        grace = self.config.service.shutdown_grace_seconds
        self.log.info("stopping", grace_seconds=grace)
        self.intake.stopping = True
        self.taps.close()
        sources_scope.cancel()
        if self.server is not None:
            self.server.should_exit = True
        with anyio.move_on_after(grace) as scope:
            await server_done.wait()
            for pipeline in self.pipelines:
                pipeline.drain()
            for pipeline in self.pipelines:
                await pipeline.finished.wait()
        if scope.cancelled_caught:
            self.log.warning("grace period over; undelivered records stay in the buffer")

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                self.log.info("signal received", signal=signal.Signals(signum).name)
                self._stop.set()
                return

    async def _supervise(self, name: str, run: Callable[..., Awaitable[Any]], *args: Any) -> None:
        try:
            await run(*args)
        except Exception as exc:
            logger(name).error("component crashed; stopping the daemon", error=repr(exc), exc_info=exc)
            self.exit_code = 1
            self._stop.set()

    async def _run_polling(self, source: Any, scope: anyio.CancelScope) -> None:
        with scope:
            await self._supervise(source.name, source.run, SourceContext(source.name, self.intake, self.buffer))

    async def _serve(self, done: anyio.Event) -> None:
        app = IngressApp(self.graph.webhook_sources, self.intake, self.config.server, self)
        config = uvicorn.Config(app, host=self.config.server.host, port=self.config.server.port,
                                http="httptools", loop="none", lifespan="off", access_log=False, interface="asgi3",
                                proxy_headers=False,
                                log_config=None, server_header=False, date_header=False,
                                timeout_graceful_shutdown=self.config.service.shutdown_grace_seconds)
        self.server = _Server(config)
        cannot_listen = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(app.watch_body_reads)
                try:
                    await self.server.serve()
                except SystemExit:  # uvicorn exits when it cannot bind
                    cannot_listen = True
                tg.cancel_scope.cancel()
        finally:
            done.set()
        if cannot_listen:
            raise RuntimeError(f"the HTTP server could not listen on "
                               f"{self.config.server.host}:{self.config.server.port}")


def _tapped_by(sink: str, routes: dict[str, dict[str, list[Any]]]) -> frozenset[str]:
    """The mappers whose output ``sink``'s pipeline shows to taps: those no earlier sink reads."""
    earlier: set[str] = set()
    for name, sink_routes in routes.items():
        mappers = {r.name for rs in sink_routes.values() for r in rs if r.mapper is not None}
        if name == sink:
            return frozenset(mappers - earlier)
        earlier |= mappers
    return frozenset()
