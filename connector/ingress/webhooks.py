"""The public listener's app: every webhook source at its path, ``/healthz`` and ``/readyz``.

Nothing else is served here, whatever the client's address: ``/status``, ``/tap``, ``/metrics``
and the dead letters are on the admin listener (``admin.py``). ``/readyz`` says whether a delivery
can be stored now (the buffer is open, has room, and the daemon is not stopping); it names no
component: a paused sink does not make it 503, since the buffer keeps what it cannot deliver.

Checks run in this order, the first failure answering: path (404), method (405), header size
(431), declared size (413), media type (415), size while reading (413, never reading past the
limit; 408 if the body does not arrive within ``body_timeout_seconds``), credentials and
decoding (the source's 401/400), then storage (503 when the buffer is full or the daemon stops).
Every refusal on a source's path goes to the ``RefusalLog`` with the client's address.

A delivery whose body came with its headers (the usual webhook) is answered without a task of
its own (``answer``, ``httpserver.WholeBody``): the checks run at once, and the answer is written
from the callback of the buffer's ``append_soon`` when the records' batch commits. The same
steps serve the ASGI call, for bodies still on their way.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import msgspec

from .. import metrics
from ..components import Accepted, WebhookRequest, WebhookSource
from ..config import ServerConfig
from ..errors import BufferFull, BufferUnavailable, HTTPError
from ..logging import logger
from .asgi import Answer, Receive, Scope, Send, error_body, json, raw_headers, respond
from .intake import Intake, StorageError
from .refusals import ClientAddress, RefusalLog

Outcome = tuple[int, dict[str, str], bytes]  # status, extra headers, body: an Answer before its content-length

RETRY_AFTER_SECONDS = "5"
RESERVED_PATHS = ("/healthz", "/readyz")  # no source may take these paths
_CLOSE = {"connection": "close"}  # the rest of the body is unread: the connection cannot be reused


class _TooLarge(Exception):
    pass


class _TimedOut(Exception):
    """The watchdog already answered this request 408: its body was late."""


class _BodyRead:
    __slots__ = ("deadline", "send", "timed_out")

    def __init__(self, deadline: float, send: Send):
        self.deadline = deadline
        self.send = send
        self.timed_out = False


class SourceActivity(msgspec.Struct):
    """What ``/status`` shows of a webhook source's deliveries beside the records it stored."""

    last_test_delivery: float | None = None  # a vendor test delivery that passed the source's checks


class WebhookApp:
    """Routes webhook deliveries to sources and stores what they accept."""

    def __init__(self, sources: list[WebhookSource], intake: Intake, config: ServerConfig):
        self.routes = {source.path: source for source in sources}
        self.activity = {source.name: SourceActivity() for source in sources}
        self.refusals = RefusalLog(self.activity)
        self.clients = ClientAddress(config.trusted_proxies)
        self.intake = intake
        self.max_body_bytes = config.max_body_bytes
        self.max_header_bytes = config.max_header_bytes
        self.body_timeout = config.body_timeout_seconds
        self._buffer_full = False
        self._reading: set[_BodyRead] = set()
        self.log = logger("server")
        self._status_counters: dict[tuple[str, int], Any] = {}

    async def ready(self) -> bool:
        """Whether a delivery can be stored now: the buffer is open and has room, the daemon runs."""
        buffer = self.intake.buffer
        return not self.intake.stopping and buffer.healthy and await buffer.has_room()

    def source_status(self) -> dict[str, Any]:
        """Per webhook source, what ``/status`` shows: records stored, the last test delivery, the
        last refusals (newest last) and the last one alone."""
        status = {}
        for name, activity in self.activity.items():
            refusals = list(self.refusals.recent[name])
            status[name] = {"received": self.intake.received.get(name, 0), **msgspec.structs.asdict(activity),
                            "last_refused": refusals[-1] if refusals else None, "refusals": refusals}
        return status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # httpserver.py sends http requests only
            return
        source = self.routes.get(scope["path"])
        if source is None:
            await self._builtin(scope, send)
            return
        started = time.perf_counter()
        try:
            outcome = await self._deliver(source, scope, receive, send)
        except _TimedOut:
            self._refused(source.name, 408, "request timeout: the body did not arrive in time", scope)
            return
        except Exception as exc:
            outcome = self._refusal(source, exc, scope)
        status, headers, body = self._rendered(source, started, outcome)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # httpserver.WholeBody: a delivery whose body has all arrived, answered without a task ------
    def takes(self, path: str) -> bool:
        return path in self.routes

    def answer(self, scope: Scope, body: bytes, reply: Callable[[Answer], None]) -> Awaitable[None] | None:
        """Check and accept now; reply once the intake stored the records (from the commit of the
        buffer's batch), or through the returned coroutine when storing needs one."""
        source = self.routes[scope["path"]]
        started = time.perf_counter()
        try:
            accepted = self._accept(source, self._head(source, scope), body)
            if not accepted.forward:
                reply(self._rendered(source, started, self._test_delivery(source, accepted)))
                return None
            stored = functools.partial(self._reply_stored, source, len(accepted.records), started, scope, reply)
            return self.intake.submit(source.name, accepted.records, stored)
        except Exception as exc:  # before the records went to the buffer (a source's records it cannot encode)
            reply(self._rendered(source, started, self._refusal(source, exc, scope)))
            return None

    def _reply_stored(self, source: WebhookSource, count: int, started: float, scope: Scope,
                      reply: Callable[[Answer], None], error: StorageError | None) -> None:
        reply(self._rendered(source, started, self._outcome(source, count, error, scope)))

    # the steps of a delivery ---------------------------------------------------------------------
    async def _deliver(self, source: WebhookSource, scope: Scope, receive: Receive, send: Send) -> Outcome:
        headers = self._head(source, scope)
        body = await self._read_in_time(receive, send)
        accepted = self._accept(source, headers, body)
        if not accepted.forward:
            return self._test_delivery(source, accepted)
        try:
            await self.intake.store(source.name, accepted.records)
        except (BufferFull, BufferUnavailable) as exc:
            return self._outcome(source, len(accepted.records), exc, scope)
        return self._outcome(source, len(accepted.records), None, scope)

    def _head(self, source: WebhookSource, scope: Scope) -> dict[str, str]:
        """The request's headers, once method, header size, declared size and media type pass."""
        if scope["method"] != "POST":
            raise HTTPError(405, "method not allowed", f"{source.path} accepts POST only", {"allow": "POST"})
        given = scope["headers"]
        if sum(map(len, itertools.chain.from_iterable(given))) > self.max_header_bytes:
            raise HTTPError(431, "request header fields too large",
                            f"the headers exceed max_header_bytes ({self.max_header_bytes} bytes)", _CLOSE)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in given}  # ASGI: names in lowercase
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not _is_json(media_type):
            raise HTTPError(415, "unsupported media type",
                            f"send Content-Type: application/json (got {media_type or 'none'!r})")
        return headers

    def _accept(self, source: WebhookSource, headers: dict[str, str], body: bytes) -> Accepted:
        """What the source makes of the body (its 401/400), unless it is too large or the daemon stops."""
        if len(body) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        if self.intake.stopping:
            raise HTTPError(503, "unavailable", "the daemon is shutting down; retry later",
                            {"retry-after": RETRY_AFTER_SECONDS})
        return source.accept(WebhookRequest(headers, body))

    def _test_delivery(self, source: WebhookSource, accepted: Accepted) -> Outcome:
        self.activity[source.name].last_test_delivery = time.time()
        metrics.TEST_DELIVERIES.labels(source.name).inc()
        self.log.info("test delivery acknowledged", source=source.name, records=len(accepted.records))
        return 200, {}, json.encode({"accepted": 0, "forwarded": False})

    def _outcome(self, source: WebhookSource, count: int, error: StorageError | None, scope: Scope) -> Outcome:
        """The answer once the intake stored ``count`` records, or could not (``error``: 503)."""
        if error is not None:
            return self._refusal(source, self._storage_refusal(error), scope)
        if self._buffer_full:
            self._buffer_full = False
            self.log.info("buffer accepts records again")
        return 200, {}, json.encode({"accepted": count})

    def _storage_refusal(self, exc: StorageError) -> HTTPError:
        if isinstance(exc, BufferFull):
            if not self._buffer_full:
                self._buffer_full = True
                self.log.warning("buffer full; answering 503 until sinks catch up", detail=str(exc))
            return HTTPError(503, "buffer full", str(exc) + "; retry later", {"retry-after": RETRY_AFTER_SECONDS})
        self.log.error("buffer unavailable", error=str(exc))
        return HTTPError(503, "buffer unavailable", f"{exc}; retry later", {"retry-after": RETRY_AFTER_SECONDS})

    def _refusal(self, source: WebhookSource, exc: Exception, scope: Scope) -> Outcome:
        """The answer to a delivery that failed with ``exc`` (recorded for ``/status``)."""
        if isinstance(exc, HTTPError):
            status, error, detail, headers = exc.status, exc.error, exc.detail, exc.headers
        elif isinstance(exc, UnicodeDecodeError):  # a source that let invalid UTF-8 through its JSON decoder
            status, error, detail, headers = (400, "malformed JSON",
                                              f"the body is not valid UTF-8 ({exc.reason} at byte {exc.start})", {})
        elif isinstance(exc, RecursionError):  # a source's untyped JSON decoder on a body nested thousands deep
            status, error, detail, headers = 400, "malformed JSON", "the body is nested too deeply", {}
        else:  # a source's bug answers 500 and leaves the daemon serving
            self.log.error("source failed", source=source.name, error=repr(exc))
            status, error, detail, headers = (500, "internal error",
                                              "the source failed on this delivery; nothing was stored", {})
        self._refused(source.name, status, f"{error}: {detail}", scope)
        return status, headers, error_body(error, detail)

    def _refused(self, source: str, status: int, reason: str, scope: Scope) -> None:
        if status != 405:  # a GET on a webhook's path (a probe, a browser) is no refused delivery
            self.refusals.refused(source, status, reason, self.clients.of(scope))

    def _rendered(self, source: WebhookSource, started: float, outcome: Outcome) -> Answer:
        """Count the answer (and time a 2xx); status, headers and body as the server sends them."""
        status, headers, body = outcome
        self._count(source.name, status)
        if status < 300:
            metrics.ACK_SECONDS.observe(time.perf_counter() - started)
        return status, raw_headers(len(body), headers), body

    async def _read_in_time(self, receive: Receive, send: Send) -> bytes:
        """The body through ``receive``: 413 past ``max_body_bytes``, 408 (by the watchdog) when late."""
        reading = _BodyRead(time.monotonic() + self.body_timeout, send)
        self._reading.add(reading)
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            raise _too_large(self.max_body_bytes) from None
        except HTTPError:  # the client went away, perhaps because the watchdog closed it
            if reading.timed_out:
                raise _TimedOut from None
            raise
        finally:
            self._reading.discard(reading)
        if reading.timed_out:
            raise _TimedOut
        return body

    async def watch_body_reads(self) -> None:
        """Answer 408 (and close the connection) to requests whose body is late.

        One task for all requests: cheaper than a timeout around every body read. Closing the
        connection ends the request's wait for its body.
        """
        while True:
            await anyio.sleep(min(1.0, self.body_timeout / 2))
            self.refusals.flush()
            now = time.monotonic()
            for reading in [r for r in self._reading if r.deadline < now and not r.timed_out]:
                reading.timed_out = True
                self._count("", 408)
                body = error_body("request timeout", f"the body did not arrive within {self.body_timeout} s")
                try:
                    await respond(reading.send, 408, body, _CLOSE)
                except OSError:
                    pass

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "incomplete body", "the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _builtin(self, scope: Scope, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path not in RESERVED_PATHS:
            self._count("", 404)
            await respond(send, 404, error_body("not found", f"no source is mounted at {path}"))
        elif method not in ("GET", "HEAD"):
            await respond(send, 405, error_body("method not allowed", f"{path} accepts GET"), {"allow": "GET"})
        elif path == "/healthz":
            await respond(send, 200, b'{"status":"ok"}')
        elif await self.ready():
            await respond(send, 200, b'{"status":"ready"}')
        else:
            await respond(send, 503, b'{"status":"not ready"}', {"retry-after": RETRY_AFTER_SECONDS})

    def _count(self, source: str, status: int) -> None:
        counter = self._status_counters.get((source, status))
        if counter is None:
            counter = self._status_counters[(source, status)] = metrics.HTTP_REQUESTS.labels(source, str(status))
        counter.inc()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _too_large(limit: int) -> HTTPError:
    return HTTPError(413, "payload too large", f"the body exceeds max_body_bytes ({limit} bytes)", _CLOSE)
