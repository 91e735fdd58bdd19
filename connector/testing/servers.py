"""Servers for tests: an ASGI app in a thread, a connection-resetting proxy, a JSON destination."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from typing import Any, Self

import msgspec

from .waiting import free_port, wait_until


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI request (for fakes that answer once it has arrived)."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


class ThreadedServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread (for fakes in tests;
    uvicorn comes with ``connector[test]``, the daemon itself does not need it)."""

    def __init__(self, app: Any, port: int | None = None):
        self.app = app
        self.port = port or free_port()
        self._server: Any = None  # a uvicorn.Server while it serves
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Listen (an ``OSError`` at once when the port is taken) and serve in a thread."""
        try:
            import uvicorn
        except ImportError:
            raise RuntimeError("ThreadedServer needs uvicorn: pip install 'connector[test]'") from None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot serve on 127.0.0.1:{self.port}: {exc.strerror}") from None
        config = uvicorn.Config(self.app, log_config=None, lifespan="off", access_log=False, loop="asyncio",
                                interface="asgi3")
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        wait_until(lambda: server.started or not self._thread.is_alive(), timeout=10)
        if not server.started:
            raise RuntimeError(f"the server on 127.0.0.1:{self.port} stopped before it served")
        return self

    def stop(self) -> None:
        """Stop listening (connections are then refused) until ``start`` again."""
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None


class ResettingProxy:
    """A TCP proxy on 127.0.0.1 to ``target_port`` that aborts connections at random.

    Each chunk a client sends is dropped, and both connections reset, with probability
    ``reset_rate`` (set it at any time): what a flaky network or load balancer does.
    """

    def __init__(self, target_port: int, reset_rate: float = 0.0):
        self.target_port = target_port
        self.reset_rate = reset_rate
        self.port = free_port()
        self.resets = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: Any = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ResettingProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(ready)), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _serve(self, ready: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        ready.set()
        await self._stopped.wait()
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await server.wait_closed()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)  # type: ignore[union-attr]
            self._thread.join(10)
            self._loop = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter, from_client: bool) -> None:
            try:
                while data := await source.read(65536):
                    if from_client and random.random() < self.reset_rate:
                        self.resets += 1
                        writer.transport.abort()
                        up_writer.transport.abort()
                        return
                    target.write(data)
                    await target.drain()
                target.close()
            except OSError:
                writer.transport.abort()
                up_writer.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        finally:
            self._writers.difference_update((writer, up_writer))
            writer.transport.abort()
            up_writer.transport.abort()


class FakeHTTPDestination(ThreadedServer):
    """A JSON endpoint on 127.0.0.1: records every body it answers 2xx to (``received``), and
    answers ``status`` instead while it is set (``fail(503)``, ``fail(401)``, ``heal()``)."""

    def __init__(self, port: int | None = None):
        super().__init__(self._app, port)
        self.received: list[Any] = []
        self.status: int | None = None
        self.requests = 0

    def fail(self, status: int) -> None:
        self.status = status

    def heal(self) -> None:
        self.status = None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        self.requests += 1
        status = self.status or 200
        if status < 300:
            self.received.append(msgspec.json.decode(body))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok":%s}' % (b"true" if status < 300 else b"false")})
