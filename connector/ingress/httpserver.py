"""HTTP/1.1 for the ingress: httptools driven directly on an asyncio Protocol, serving the ASGI app.

It serves both listeners' apps (``webhooks.py``, ``admin.py``) and the delivery process's control
socket in place of uvicorn: the same ASGI calls, without a server's general machinery
(``bench/server_probe.py``: uvicorn spends about 20 µs of CPU a request on this machine before
the app runs; httptools on a Protocol, under 7). What it does:

- keep-alive, pipelined requests answered in order (one request at a time per connection);
- request bodies streamed to ``receive`` (chunked ones decoded by httptools), reading paused while
  the app has not taken what arrived, so an oversized body is never buffered;
- answers with ``content-length`` as given, chunked otherwise (``/tap``'s stream); ``connection:
  close`` from the app, or a client that asked for it, closes after the answer; what is left of
  the body of an answered request is read and dropped;
- ``http.disconnect`` to ``receive`` once the client is gone;
- a malformed request: 400 and close; an app that fails before answering: 500;
- bounded connections (``Limits``): a request head not whole within ``header_timeout`` of the
  connection or of its first byte is closed (408 when anything of it came; a head over
  ``max_header_bytes``, counted from the chunk after its first, is 431 before it is whole), a
  keep-alive connection idle for ``idle_timeout`` is closed, and past ``max_connections`` the
  longest-quiet connection is closed to make room for the new one. One watchdog task checks
  every connection about once a second; what it closed is counted
  (``connector_connections_closed_total``) and logged once a tick;
- TLS when given an ``ssl.SSLContext`` (the handshake bounded by ``header_timeout`` too);
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
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httptools

from .. import metrics
from ..logging import logger
from .asgi import Answer, App


class WholeBody(Protocol):
    """Answers requests whose body has all arrived, without a task of their own."""

    def takes(self, path: str) -> bool:
        """Whether ``answer`` serves ``path`` (else the ASGI app does)."""
        ...

    def answer(self, scope: dict[str, Any], body: bytes, reply: Callable[[Answer], None]) -> Awaitable[None] | None:
        """Answer the request ``scope`` with its whole ``body`` by calling ``reply`` once: now, from
        a callback later, or from the awaitable returned (the server runs it as a task)."""
        ...


@dataclass(frozen=True)
class Limits:
    """The bounds on a listener's connections (``[server]``/``[admin]`` settings of the same names)."""

    header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 60.0
    max_connections: int = 4096
    max_header_bytes: int = 16_384


HIGH_WATER = 65_536  # bytes of body held for the app before reading pauses
_HEADS: dict[tuple[Any, ...], tuple[bytes, bool, bool]] = {}  # Cycle._head's renderings of tuples of headers
_ASGI = {"version": "3.0", "spec_version": "2.3"}  # the same for every request (apps only read it)
_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}
_BAD_REQUEST = (b'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n'
                b'content-length: 62\r\n\r\n{"error":"bad request","detail":"the request is not HTTP/1.1"}')
_FAILED = (b'{"error":"internal error","detail":"the request could not be answered; nothing was stored"}')
_FAILURE: Answer = (500, ((b"content-type", b"application/json"), (b"connection", b"close"),
                          (b"content-length", b"%d" % len(_FAILED))), _FAILED)  # what a failed app answers
_BUSY = (b'HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n'
         b'retry-after: 1\r\ncontent-length: 71\r\n\r\n'
         b'{"error":"unavailable","detail":"max_connections reached; retry later"}')
_HEADER_TIMEOUT = (b'HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n'
                   b'content-length: 70\r\n\r\n{"error":"request timeout","detail":"the request head did not arrive"}')
_HEADERS_TOO_LARGE = (b'HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n'
                      b'connection: close\r\ncontent-length: 76\r\n\r\n'
                      b'{"error":"request header fields too large","detail":"the head is too large"}')


class HTTPServer:
    """Serves ``app`` (and ``whole_body``'s paths) on a bound, listening socket until ``shutdown``;
    ``name`` labels its log lines and metrics (``server``, ``admin``)."""

    def __init__(self, app: App, sock: socket.socket, whole_body: WholeBody | None = None, limits: Limits = Limits(),
                 tls: ssl.SSLContext | None = None, name: str = "server"):
        self.app = app
        self.whole_body = whole_body
        self.sock = sock
        self.limits = limits
        self.tls = tls
        self.scheme = "https" if tls is not None else "http"
        self.name = name
        self.connections: set[Connection] = set()
        self.closed_by_watch: collections.Counter[str] = collections.Counter()  # since the last tick's log line
        self._server: asyncio.AbstractServer | None = None
        self._stopped = asyncio.Event()
        self.log = logger(name)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        handshake = self.limits.header_timeout_seconds if self.tls is not None else None
        self._server = await loop.create_server(lambda: Connection(self), sock=self.sock, backlog=2048, ssl=self.tls,
                                                ssl_handshake_timeout=handshake)
        watch = loop.create_task(self._watch())
        try:
            await self._stopped.wait()
        finally:
            watch.cancel()
            self._server.close()  # also when cancelled before ``shutdown`` (a grace period ran out)

    async def _watch(self) -> None:
        """Close connections past their header or idle deadline, about once a second."""
        every = min(1.0, self.limits.header_timeout_seconds / 4, self.limits.idle_timeout_seconds / 4)
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for connection in list(self.connections):
                connection.check_deadlines(now)
            self._report_closed()

    def closed_one(self, reason: str) -> None:
        """Count a connection this server closed on its own (``reason``: which bound)."""
        metrics.CONNECTIONS_CLOSED.labels(self.name, reason).inc()
        self.closed_by_watch[reason] += 1

    def _report_closed(self) -> None:
        """One log line a tick for the connections closed by a bound (never one line each)."""
        closed, self.closed_by_watch = self.closed_by_watch, collections.Counter()
        if closed["header_timeout"]:
            self.log.warning("connections closed: no whole request head in time", count=closed["header_timeout"],
                             header_timeout_seconds=self.limits.header_timeout_seconds)
        if closed["max_connections"]:
            self.log.warning("connections closed to make room: max_connections reached",
                             count=closed["max_connections"], max_connections=self.limits.max_connections)
        if closed["idle_timeout"]:
            self.log.debug("idle connections closed", count=closed["idle_timeout"])

    def make_room(self, new: Connection) -> None:
        """Past ``max_connections``: close the connection quiet for longest (idle, or connected
        without sending a byte); ``new`` itself when every other one is busy."""
        quietest = min((c for c in self.connections if c is not new and c.quiet() and not c.closing()),
                       key=lambda c: c.quiet_since, default=new)
        self.closed_one("max_connections")
        if quietest is new:
            new.write(_BUSY)
        quietest.close()

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
        # the bounds: a head in progress (since when, whether a byte of it came, its size so far),
        # and since when the connection has been quiet (connected or answered, nothing sent since)
        self.in_head = True
        self.head_started = self.quiet_since = time.monotonic()
        self.head_began = False
        self.head_bytes = 0

    # asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        self.server.connections.add(self)
        if len(self.server.connections) > self.server.limits.max_connections:
            self.server.make_room(self)

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse()
        except httptools.HttpParserError:
            self._refuse()
        if self.in_head and self.head_bytes > self.server.limits.max_header_bytes and not self.closing():
            self.write(_HEADERS_TOO_LARGE)  # a head still not whole past the limit: never held whole
            self.close()
            return
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
        if not self.in_head:  # a keep-alive connection's next request: its head's deadline starts now
            self.in_head = True
            self.head_started = time.monotonic()
        self.head_began = True

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.in_head = self.head_began = False
        self.head_bytes = 0
        url = self.url
        if url[:1] == b"/" and b"?" not in url and b"#" not in url:  # a plain path: nothing to split
            raw_path, query = url, b""
        else:
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path, parsed.query or b""
        path = raw_path.decode("latin-1")
        scope = {"type": "http", "asgi": _ASGI,
                 "http_version": self.parser.get_http_version(), "method": self.parser.get_method().decode(),
                 "scheme": self.server.scheme, "path": urllib.parse.unquote(path) if "%" in path else path,
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

    def finished(self, cycle: Cycle, keep_alive: bool) -> None:
        """``cycle`` sent its whole answer: close, or begin the next parsed request."""
        self.quiet_since = time.monotonic()
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

    def quiet(self) -> bool:
        """Idle between requests, or connected without a byte of a request: closed first for room."""
        return self.idle() and not self.head_began

    def check_deadlines(self, now: float) -> None:
        """Close this connection if its request head is late, or it has been idle too long."""
        if self.closed:
            return
        limits = self.server.limits
        if self.in_head and not self.cycles:  # connected and nothing whole yet, or the next request's head
            if now - self.head_started > limits.header_timeout_seconds:  # (one in flight keeps it open)
                self.server.closed_one("header_timeout")
                if self.head_began:  # something came: say why it is closed
                    self.write(_HEADER_TIMEOUT)
                self.close()
        elif self.idle() and now - self.quiet_since > limits.idle_timeout_seconds:
            self.server.closed_one("idle_timeout")
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def closing(self) -> bool:
        return self.closed or self.transport is None or self.transport.is_closing()

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
            self.keep_alive = False
        if self.complete:
            return
        if self.started:  # the app failed, or returned, half-way through its answer
            self.complete = True
            self.connection.finished(self, keep_alive=False)
        else:
            self.reply(_FAILURE)

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
        self.reply(_FAILURE)

    def reply(self, answer: Answer) -> None:
        """Write the whole-body answerer's answer (the first one only)."""
        if self.complete:
            return
        status, headers, body = answer
        self.started = True
        self.connection.write(self._head(status, headers) + (b"" if self.scope["method"] == "HEAD" else body))
        self.complete = True
        self._end_unread_body()
        self.connection.finished(self, self.keep_alive)

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
            self.connection.finished(self, self.keep_alive)
