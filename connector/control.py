"""The delivery process's control server: ``/status``, ``/metrics`` and ``/tap`` on a unix socket.

Only the main process knows the socket (a private temporary folder); it asks here for the
sinks' live state, merges these metrics into its own and streams these taps to its clients.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import msgspec
import uvicorn

from . import metrics
from .delivery import LocalDelivery, Task
from .listening import QuietServer
from .tap import TapHub, stream_tap, tap_component

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_json = msgspec.json.Encoder()


class ControlServer:
    """An ASGI app on ``socket_path`` for the main process."""

    def __init__(self, socket_path: str, delivery: LocalDelivery, taps: TapHub):
        self.socket_path = socket_path
        self.delivery = delivery
        self.taps = taps
        self._server: QuietServer | None = None
        self._done = anyio.Event()

    def tasks(self) -> list[Task]:
        return [Task("control", self._serve)]

    async def drain(self) -> None:
        """Stop answering (taps end first: the daemon closed them)."""
        if self._server is not None:
            self._server.should_exit = True
            await self._done.wait()

    async def _serve(self) -> None:
        config = uvicorn.Config(self, uds=self.socket_path, http="h11", loop="none", lifespan="off",
                                access_log=False, log_config=None, server_header=False, date_header=False)
        self._server = QuietServer(config)
        try:
            await self._server.serve()
        finally:
            self._done.set()
            # its private folder, also when the main process is gone (and cannot remove it)
            shutil.rmtree(os.path.dirname(self.socket_path), ignore_errors=True)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/status":
            await _respond(send, 200, _json.encode({"sinks": await self.delivery.sink_status()}), b"application/json")
        elif path == "/metrics":
            await _respond(send, 200, metrics.render(None), b"text/plain; version=0.0.4")
        elif path == "/tap":
            await stream_tap(receive, send, self.taps, tap_component(scope), None)
        else:
            await _respond(send, 404, b'{"error":"not found"}', b"application/json")


async def _respond(send: Send, status: int, body: bytes, media: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
