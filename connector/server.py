"""The HTTP ingress: one ASGI app for every webhook source, plus health, readiness and metrics.

Checks run in this order, the first failure answering: path (404), method (405), declared size
(413), media type (415), size while reading (413, never reading past the limit), credentials and
decoding (the source's 401/400), then storage (503 when the buffer is full or the daemon stops).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog

from . import metrics
from .components import Accepted, WebhookRequest, WebhookSource
from .errors import BufferFull, BufferUnavailable, HTTPError
from .intake import Intake

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

RETRY_AFTER_SECONDS = "5"
_json = msgspec.json.Encoder()
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _TooLarge(Exception):
    pass


class IngressApp:
    """Routes webhook deliveries to sources and stores what they accept."""

    def __init__(self, sources: list[WebhookSource], intake: Intake, max_body_bytes: int,
                 readiness: Callable[[], dict[str, str]]):
        self.routes = {source.path: source for source in sources}
        self.intake = intake
        self.max_body_bytes = max_body_bytes
        self.readiness = readiness
        self.log = structlog.get_logger("connector").bind(component="server")
        self._status_counters: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        source = self.routes.get(path)
        if source is None:
            await self._builtin(path, scope["method"], send)
            return
        started = time.perf_counter()
        try:
            status, body, headers = await self._deliver(source, scope, receive)
        except HTTPError as exc:
            status, headers = exc.status, exc.headers
            body = _json.encode({"error": exc.error, "detail": exc.detail})
        except Exception as exc:  # a source's bug answers 500 and leaves the daemon serving
            self.log.error("source failed", source=source.name, error=repr(exc))
            status, headers = 500, {}
            body = _error("internal error", "the source failed on this delivery; nothing was stored")
        self._count(source.name, status)
        if status < 300:
            metrics.ACK_SECONDS.observe(time.perf_counter() - started)
        await _respond(send, status, body, headers)

    async def _deliver(self, source: WebhookSource, scope: Scope, receive: Receive) -> tuple[int, bytes, dict[str, str]]:
        if scope["method"] != "POST":
            raise HTTPError(405, "method not allowed", f"{source.path} accepts POST only", {"allow": "POST"})
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not _is_json(media_type):
            raise HTTPError(415, "unsupported media type",
                            f"send Content-Type: application/json (got {media_type or 'none'!r})")
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            raise _too_large(self.max_body_bytes) from None
        if self.intake.stopping:
            raise HTTPError(503, "unavailable", "the daemon is shutting down; retry later",
                            {"retry-after": RETRY_AFTER_SECONDS})
        accepted: Accepted = source.accept(WebhookRequest(headers, body))
        if not accepted.forward:
            metrics.TEST_DELIVERIES.labels(source.name).inc()
            self.log.info("test delivery acknowledged", source=source.name, records=len(accepted.records))
            return 200, _json.encode({"accepted": 0, "forwarded": False}), {}
        try:
            await self.intake.store(source.name, accepted.records)
        except BufferFull as exc:
            raise HTTPError(503, "buffer full", str(exc) + "; retry later",
                            {"retry-after": RETRY_AFTER_SECONDS}) from None
        except BufferUnavailable as exc:
            self.log.error("buffer unavailable", error=str(exc.__cause__ or exc))
            raise HTTPError(503, "buffer unavailable", "the record could not be stored; retry later",
                            {"retry-after": RETRY_AFTER_SECONDS}) from None
        return 200, _json.encode({"accepted": len(accepted.records)}), {}

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

    async def _builtin(self, path: str, method: str, send: Send) -> None:
        if path in ("/healthz", "/readyz", "/metrics") and method not in ("GET", "HEAD"):
            await _respond(send, 405, _error("method not allowed", f"{path} accepts GET"), {"allow": "GET"})
        elif path == "/healthz":
            await _respond(send, 200, b'{"status":"ok"}', {})
        elif path == "/readyz":
            problems = self.readiness()
            if problems:
                await _respond(send, 503, _json.encode({"status": "not ready", "problems": problems}), {})
            else:
                await _respond(send, 200, b'{"status":"ready"}', {})
        elif path == "/metrics":
            await _respond(send, 200, metrics.render(), {"content-type": "text/plain; version=0.0.4"})
        else:
            self._count("", 404)
            await _respond(send, 404, _error("not found", f"no source is mounted at {path}"), {})

    def _count(self, source: str, status: int) -> None:
        counter = self._status_counters.get((source, status))
        if counter is None:
            counter = self._status_counters[(source, status)] = metrics.HTTP_REQUESTS.labels(source, str(status))
        counter.inc()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _too_large(limit: int) -> HTTPError:
    return HTTPError(413, "payload too large", f"the body exceeds max_body_bytes ({limit} bytes)")


def _error(error: str, detail: str) -> bytes:
    return _json.encode({"error": error, "detail": detail})


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if "content-type" not in headers:
        raw_headers += _JSON_HEADERS
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
