"""The delivery process's control server: ``/status``, ``/metrics`` and ``/tap`` on a unix socket.

Only the main process knows the socket (a private temporary folder); it asks here for the
sinks' live state, merges these metrics into its own and streams these taps to its clients.
Served by the ingress's own HTTP server.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any

import anyio

from .. import metrics
from ..ingress.asgi import Receive, Send, error_body, json, respond
from ..ingress.httpserver import HTTPServer, Limits
from ..tap import TapHub, stream_tap, tap_component
from .local import LocalDelivery, Task

# the main process keeps one connection open for the daemon's life: never idle-closed under it
CONTROL_LIMITS = Limits(idle_timeout_seconds=24 * 3600.0, max_connections=64)


class ControlServer:
    """An ASGI app on ``socket_path`` for the main process."""

    def __init__(self, socket_path: str, delivery: LocalDelivery, taps: TapHub):
        self.socket_path = socket_path
        self.delivery = delivery
        self.taps = taps
        self._server: HTTPServer | None = None
        self._done = anyio.Event()

    def tasks(self) -> list[Task]:
        return [Task("control", self._serve)]

    async def drain(self) -> None:
        """Stop answering (taps end first: the daemon closed them)."""
        if self._server is not None:
            await self._server.shutdown()
            await self._done.wait()

    async def _serve(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.socket_path)
            sock.listen(64)
            self._server = HTTPServer(self, sock, limits=CONTROL_LIMITS, name="control")
            await self._server.serve()
        finally:
            sock.close()
            self._done.set()
            # its private folder, also when the main process is gone (and cannot remove it)
            shutil.rmtree(os.path.dirname(self.socket_path), ignore_errors=True)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/status":
            await respond(send, 200, json.encode({"sinks": await self.delivery.sink_status()}))
        elif path == "/metrics":
            await respond(send, 200, metrics.render(None), {"content-type": "text/plain; version=0.0.4"})
        elif path == "/tap":
            await stream_tap(receive, send, self.taps, tap_component(scope), None)
        else:
            await respond(send, 404, error_body("not found", f"no control route at {path}"))
