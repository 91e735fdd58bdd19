"""HTTP/1.1 for the ingress: httptools driven directly on an asyncio Protocol, serving the ASGI app.

It replaces uvicorn under ``IngressApp``: the same ASGI calls, without a server's general
machinery (``bench/server_probe.py``: uvicorn spends about 20 µs of CPU a request on this machine
before the app runs; httptools on a Protocol, under 7). What it does:

- keep-alive, pipelined requests answered in order (one request at a time per connection);
- request bodies streamed to ``receive`` (chunked ones decoded by httptools), reading paused while
  the app has not taken what arrived, so an oversized body is never buffered;
- answers with ``content-length`` as given, chunked otherwise (``/tap``'s stream); ``connection:
  close`` from the app, or a client that asked for it, closes after the answer; what is left of
  the body of an answered request is read and dropped;
- ``http.disconnect`` to ``receive`` once the client is gone;
- a malformed request: 400 and close; an app that fails before answering: 500;
- a request whose whole body has arrived by the time it is served goes, when a ``WholeBody``
  answerer takes its path (the ingress's webhook paths), to ``answer(scope, body, reply)``
  instead of the ASGI call: no task, no ``receive``/``send`` messages, one write of the answer
  whenever ``reply`` is called. Bodies still on their way, and every other path, take the ASGI
  call in a task (size limits, timeouts and streams live there).
"""

from __future__ import annotations

import asyncio
import collections
import http
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import httptools

from .logging import logger

App = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
               Awaitable[None]]
Answer = tuple[int, Sequence[tuple[bytes, bytes]], bytes]  # status, headers (with content-length), body


class WholeBody(Protocol):
    """Answers requests whose body has all arrived, without a task of their own."""

    def takes(self, path: str) -> bool:
        """Whether ``answer`` serves ``path`` (else the ASGI app does)."""
        ...

    def answer(self, scope: dict[str, Any], body: bytes, reply: Callable[[Answer], None]) -> Awaitable[None] | None:
        """Answer the request ``scope`` with its whole ``body`` by calling ``reply`` once: now, from
        a callback later, or from the awaitable returned (the server runs it as a task)."""
        ...


HIGH_WATER = 65_536  # bytes of body held for the app before reading pauses
_HEADS: dict[tuple[Any, ...], tuple[bytes, bool, bool]] = {}  # Cycle._head's renderings of tuples of headers
_ASGI = {"version": "3.0", "spec_version": "2.3"}  # the same for every request (apps only read it)
_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}
_BAD_REQUEST = (b'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n'
                b'content-length: 62\r\n\r\n{"error":"bad request","detail":"the request is not HTTP/1.1"}')
_FAILED = (b'{"error":"internal error","detail":"the request could not be answered; nothing was stored"}')


class HTTPServer:
    """Serves ``app`` (and ``whole_body``'s paths) on a bound, listening socket until ``shutdown``."""

    def __init__(self, app: App, sock: socket.socket, whole_body: WholeBody | None = None):
        self.app = app
        self.whole_body = whole_body
        self.sock = sock
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._stopped = asyncio.Event()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), sock=self.sock, backlog=2048)
        await self._stopped.wait()

    async def shutdown(self) -> None:
        """Stop accepting; let answers in progress finish; close idle connections."""
        if self._server is not None:
            self._server.close()
        while True:
            for connection in list(self.connections):
                if connection.idle():
                    connection.close()
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        self._stopped.set()


class Connection(asyncio.Protocol):
    """One client connection: parses requests, runs one ASGI cycle at a time, in order."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] | None = None
        self.cycles: collections.deque[Cycle] = collections.deque()  # parsed, not yet answered
        self.parsing: Cycle | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.paused = False
        self.closed = False
        self.beginning = False

    # asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse()
        except httptools.HttpParserError:
            self._refuse()
        self._begin_next()  # after the whole chunk: a body that came with its headers is whole

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        for cycle in self.cycles:
            cycle.disconnect()
        if self.parsing is not None:
            self.parsing.disconnect()

    # httptools callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        url = self.url
        if url[:1] == b"/" and b"?" not in url and b"#" not in url:  # a plain path: nothing to split
            raw_path, query = url, b""
        else:
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path, parsed.query or b""
        path = raw_path.decode("latin-1")
        scope = {"type": "http", "asgi": _ASGI,
                 "http_version": self.parser.get_http_version(), "method": self.parser.get_method().decode(),
                 "scheme": "http", "path": urllib.parse.unquote(path) if "%" in path else path,
                 "raw_path": raw_path, "query_string": query, "root_path": "",
                 "headers": self.headers, "client": self.client, "server": None}
        cycle = Cycle(self, scope, self.parser.should_keep_alive())
        self.parsing = cycle
        self.cycles.append(cycle)

    def on_body(self, body: bytes) -> None:
        cycle = self.parsing
        if cycle is not None and not cycle.complete:  # the rest of an answered request's body is dropped
            cycle.feed(body)
            if cycle.held > HIGH_WATER:
                self.pause()

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.body_complete()
            self.parsing = None

    # flow ---------------------------------------------------------------------------------------
    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def answered(self, cycle: Cycle, keep_alive: bool) -> None:
        """``cycle`` sent its whole answer: close, or begin the next parsed request."""
        if self.cycles and self.cycles[0] is cycle:
            self.cycles.popleft()
        if not keep_alive:
            self.close()
            return
        self.resume()
        if not self.beginning:
            self._begin_next()

    def _begin_next(self) -> None:
        """Begin the first request not yet begun, and each next one its answer lets through at once
        (a loop, not a recursion: pipelined requests may all be answered on the spot)."""
        self.beginning = True
        try:
            while self.cycles and not self.cycles[0].begun and not self.closed:
                self.cycles[0].begin()
        finally:
            self.beginning = False

    def idle(self) -> bool:
        return not self.cycles and self.parsing is None

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _refuse(self) -> None:
        self.write(_BAD_REQUEST)
        self.close()


class Cycle:
    """One request and its answer: the ASGI ``receive`` and ``send`` of the app's call."""

    __slots__ = ("connection", "scope", "keep_alive", "chunks", "held", "more_body", "changed", "disconnected",
                 "final_sent", "begun", "started", "complete", "head", "chunked", "task", "expect_continue")

    def __init__(self, connection: Connection, scope: dict[str, Any], keep_alive: bool):
        self.connection = connection
        self.scope = scope
        self.keep_alive = keep_alive
        self.chunks: list[bytes] = []
        self.held = 0
        self.more_body = True
        self.changed: asyncio.Event | None = None  # made when the app waits for more of the body
        self.disconnected = False
        self.final_sent = False  # the last http.request message went to the app
        self.begun = False
        self.started = False
        self.complete = False
        self.head = b""
        self.chunked = False
        self.task: asyncio.Task[None] | None = None
        self.expect_continue = (b"expect", b"100-continue") in scope["headers"]

    def begin(self) -> None:
        """Answer whole when the body has arrived and ``whole_body`` takes the path; else run the
        ASGI app in a task."""
        self.begun = True
        whole_body = self.connection.server.whole_body
        if whole_body is not None and not self.more_body and whole_body.takes(self.scope["path"]):
            self._answer_whole(whole_body)
        else:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.connection.server.app(self.scope, self.receive, self.send)
        except Exception as exc:
            logger("server").error("the ingress failed on a request", error=repr(exc))
            if not self.started:
                await self._answer_failure()
            else:
                self.keep_alive = False
        if not self.complete:  # the app returned without finishing its answer
            if not self.started:
                await self._answer_failure()
            self.complete = True
            self.connection.answered(self, keep_alive=False)

    def _answer_whole(self, whole_body: WholeBody) -> None:
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.held = 0
        try:
            pending = whole_body.answer(self.scope, body, self.reply)
        except Exception as exc:
            self._fail(exc)
            return
        if pending is not None:
            self.task = asyncio.get_running_loop().create_task(self._await_reply(pending))

    async def _await_reply(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        logger("server").error("the ingress failed on a request", error=repr(exc))
        self.reply((500, [(b"content-type", b"application/json"), (b"connection", b"close"),
                          (b"content-length", b"%d" % len(_FAILED))], _FAILED))

    def reply(self, answer: Answer) -> None:
        """Write the whole-body answerer's answer (the first one only)."""
        if self.complete:
            return
        status, headers, body = answer
        self.started = True
        self.connection.write(self._head(status, headers) + (b"" if self.scope["method"] == "HEAD" else body))
        self.complete = True
        self._end_unread_body()
        self.connection.answered(self, self.keep_alive)

    def _end_unread_body(self) -> None:
        """Answered before its body was read: the rest is read and dropped as it comes (the
        connection stays usable), unless the client still waits for a 100 Continue to send it."""
        self.chunks.clear()
        self.held = 0
        if self.more_body and self.expect_continue:
            self.keep_alive = False

    def _head(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
        """The status line and header block; sets ``keep_alive`` and ``chunked`` from them. A
        tuple of headers (the ingress's usual answers) is rendered once and remembered."""
        key = (status, headers, self.keep_alive, self.scope["method"] == "HEAD") if type(headers) is tuple else None
        if key is not None and (known := _HEADS.get(key)) is not None:
            head, self.keep_alive, self.chunked = known
            return head
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
        has_length = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length":
                has_length = True
            elif name == b"connection" and value.lower() == b"close":
                self.keep_alive = False
            lines.append(b"%s: %s\r\n" % (name, value))
        if not self.keep_alive:
            if not any(line.startswith(b"connection:") for line in lines[1:]):
                lines.append(b"connection: close\r\n")
        if not has_length and self.scope["method"] != "HEAD":
            self.chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        lines.append(b"\r\n")
        head = b"".join(lines)
        if key is not None and len(_HEADS) < 1024:
            _HEADS[key] = (head, self.keep_alive, self.chunked)
        return head

    async def _answer_failure(self) -> None:
        await self.send({"type": "http.response.start", "status": 500,
                         "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                     (b"content-length", b"%d" % len(_FAILED))]})
        await self.send({"type": "http.response.body", "body": _FAILED})

    # from the parser ---------------------------------------------------------------------------
    def feed(self, body: bytes) -> None:
        self.chunks.append(body)
        self.held += len(body)
        if self.changed is not None:
            self.changed.set()

    def body_complete(self) -> None:
        self.more_body = False
        if self.changed is not None:
            self.changed.set()

    def disconnect(self) -> None:
        self.disconnected = True
        if self.changed is not None:
            self.changed.set()

    # ASGI ---------------------------------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        if self.expect_continue:  # the client waits for this before it sends the body
            self.expect_continue = False
            if self.more_body and not self.chunks:
                self.connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while True:
            if self.chunks or (not self.more_body and not self.final_sent):
                body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
                self.chunks.clear()
                self.held = 0
                self.connection.resume()
                self.final_sent = not self.more_body
                return {"type": "http.request", "body": body, "more_body": self.more_body}
            if self.disconnected:
                return {"type": "http.disconnect"}
            if self.changed is None:
                self.changed = asyncio.Event()
            self.changed.clear()
            await self.changed.wait()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.head = self._head(message["status"], message.get("headers", ()))
            self.started = True
            return
        if kind != "http.response.body" or self.complete:
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            body = b""
        if self.chunked:
            data = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + (b"" if more else b"0\r\n\r\n")
        else:
            data = body
        if self.head:
            data, self.head = self.head + data, b""
        self.connection.write(data)
        if not more:
            self.complete = True
            self._end_unread_body()
            self.connection.answered(self, self.keep_alive)
