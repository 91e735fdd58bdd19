"""The admin listener's app: what an operator reads and does, apart from the public webhooks.

Routes (``connector status | tap | dlq`` use them; the console will too):

- ``GET /healthz`` and ``GET /metrics`` (Prometheus), open to whoever reaches the listener;
- ``GET /status``: sinks (lag, delivered, dead letters, paused, last error), sources (received,
  last test delivery, last refusals, paused polling sources), the buffer;
- ``GET /tap[?component=NAME]``: NDJSON of what components emit, live;
- ``GET /rates``: received/s per source and delivered/s per sink over the last minutes;
- ``GET /`` (and its ``/console.js``, ``/console.css``): the web console, which reads the routes above;
- ``GET /dead-letters[?id=N...]`` (or filtered: ``sink``, ``reason`` (a part of it), ``limit``,
  ``bodies=0``; ``total`` counts the matching ones); ``POST /dead-letters/replay`` and
  ``/dead-letters/purge`` with ``{"ids": [...]}`` or ``{"all": true}`` (JSON, from no other origin).

With ``[admin] token`` set, every route but ``/healthz``, ``/metrics`` and the console's files needs
``Authorization: Bearer <token>`` (compared in constant time; 401 otherwise, logged without the
token). Without one, any web page the operator has open could ask: so the other routes answer only
a ``Host`` that is an address or localhost (no DNS rebinding), and a ``POST`` must be JSON from the
listener's own origin (no cross-site request); 403 otherwise.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec

from .. import metrics
from ..buffer import Buffer
from ..logging import logger
from ..records import DeadLetterList, DeadLetterView
from ..tap import TapHub, stream_tap, tap_component
from .asgi import Receive, Scope, Send, error_body, json, respond
from .console_files import FILES, ConsoleFiles

OPEN_PATHS = ("/healthz", "/metrics", *FILES)  # the console's files hold no data: its requests need the token
MAX_REQUEST_BYTES = 1_048_576
DONE = {"replay": "replayed", "purge": "purged"}
LOGGED_IDS = 20  # of a replay or purge, in its log line
_TEXT = {"content-type": "text/plain; version=0.0.4"}


class Daemon(Protocol):
    """What the admin app shows of the daemon."""

    buffer: Buffer
    taps: TapHub

    async def status(self) -> dict[str, Any]: ...

    def rate_history(self) -> dict[str, Any]: ...

    async def other_process_metrics(self) -> str | None: ...

    def other_process_tap(self, component: str | None) -> AsyncIterator[bytes] | None: ...


class DeadLetterAction(msgspec.Struct, forbid_unknown_fields=True):
    """The body of a replay or purge: some ids, or all."""

    ids: list[int] = []
    all: bool = False


class AdminApp:
    """Serves the admin routes for ``daemon``; ``token`` (when set) guards all but the open ones."""

    def __init__(self, daemon: Daemon, token: str | None):
        self.daemon = daemon
        self.expected = f"Bearer {token}".encode() if token else None
        self.log = logger("admin")
        self._last_refusal_logged = 0.0
        self.console = ConsoleFiles()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if refusal := self._foreign(scope):
            await respond(send, 403, error_body("forbidden", refusal))
            return
        if path not in OPEN_PATHS and not self._authorized(scope):
            await respond(send, 401, error_body("unauthorized", "send Authorization: Bearer <admin.token>"),
                          {"www-authenticate": 'Bearer realm="connector admin"'})
            return
        if path.startswith("/dead-letters"):
            await self._dead_letters(scope, receive, send)
            return
        handler = {"/healthz": self._healthz, "/metrics": self._metrics, "/status": self._status,
                   "/tap": self._tap, "/rates": self._rates}.get(path, self._console if path in FILES else None)
        if handler is None:
            await respond(send, 404, error_body("not found", f"no admin route at {path}"))
        elif method not in ("GET", "HEAD"):
            await respond(send, 405, error_body("method not allowed", f"{path} accepts GET"), {"allow": "GET"})
        else:
            await handler(scope, receive, send)

    def _foreign(self, scope: Scope) -> str | None:
        """Why a request may come from another site's page in the operator's browser (None: it cannot)."""
        headers = dict(scope["headers"])
        if self.expected is None and scope["path"] not in OPEN_PATHS and not _local_name(headers.get(b"host", b"")):
            return "without [admin] token, the admin listener answers to its address or localhost only"
        if scope["method"] == "POST":
            origin = headers.get(b"origin")
            if origin is not None and origin.split(b"://", 1)[-1] != headers.get(b"host"):
                return "a request from another origin"
            if not headers.get(b"content-type", b"").startswith(b"application/json"):
                return "send Content-Type: application/json"
        return None

    def _authorized(self, scope: Scope) -> bool:
        if self.expected is None:
            return True
        given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if hmac.compare_digest(given, self.expected):
            return True
        metrics.ADMIN_REFUSED.inc()
        now = time.monotonic()
        if now - self._last_refusal_logged >= 1.0:  # at most a line a second: a scan cannot flood the log
            self._last_refusal_logged = now
            self.log.warning("admin request refused", path=scope["path"], client=(scope.get("client") or ("",))[0],
                             reason="missing Authorization header" if not given else "wrong token")
        return False

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b'{"status":"ok"}')

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        other = await self.daemon.other_process_metrics()
        await respond(send, 200, metrics.render(other), _TEXT)

    async def _status(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, json.encode(await self.daemon.status()))

    async def _console(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.console.serve(scope["path"], send)

    async def _rates(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, json.encode(self.daemon.rate_history()))

    async def _tap(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream NDJSON lines of what a component (``?component=NAME``, or all) emits."""
        component = tap_component(scope)
        await stream_tap(receive, send, self.daemon.taps, component, self.daemon.other_process_tap(component))

    # dead letters ----------------------------------------------------------------------------
    async def _dead_letters(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method, buffer = scope["path"], scope["method"], self.daemon.buffer
        if path == "/dead-letters":
            if method not in ("GET", "HEAD"):
                await respond(send, 405, error_body("method not allowed", f"{path} accepts GET"), {"allow": "GET"})
                return
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            try:
                ids = [int(i) for i in query.get("id", [])]
                limit = int(query["limit"][0]) if "limit" in query else None
            except ValueError:
                await respond(send, 400, error_body("bad request", "id and limit must be integers"))
                return
            sink, reason = query.get("sink", [""])[0], query.get("reason", [""])[0].lower()
            letters = [letter for letter in await buffer.dead_letters(ids)
                       if (not sink or letter.sink == sink) and (not reason or reason in letter.reason.lower())]
            views = [DeadLetterView.of(letter) for letter in letters[:limit]]
            if query.get("bodies") == ["0"]:
                views = [msgspec.structs.replace(view, body=msgspec.Raw(b"null")) for view in views]
            await respond(send, 200, json.encode(DeadLetterList(views, len(letters))))
            return
        action = path.removeprefix("/dead-letters/")
        if action not in ("replay", "purge"):
            await respond(send, 404, error_body("not found", f"no admin route at {path}"))
            return
        if method != "POST":
            await respond(send, 405, error_body("method not allowed", f"{path} accepts POST"), {"allow": "POST"})
            return
        try:
            asked = msgspec.json.decode(await _read_body(receive), type=DeadLetterAction)
        except (msgspec.DecodeError, ValueError) as exc:
            await respond(send, 400, error_body("bad request", f'send {{"ids": [...]}} or {{"all": true}}: {exc}'))
            return
        if not asked.ids and not asked.all:
            await respond(send, 400, error_body("bad request", 'name dead-letter ids, or send {"all": true}'))
            return
        missing = sorted(set(asked.ids) - {letter.id for letter in await buffer.dead_letters(asked.ids)})
        if missing:
            await respond(send, 404, error_body("not found", f"no dead letter with id {', '.join(map(str, missing))}"))
            return
        count = await (buffer.replay(asked.ids) if action == "replay" else buffer.purge(asked.ids))
        self.log.info(f"dead letters {DONE[action]}", count=count,
                      ids=asked.ids[:LOGGED_IDS] if asked.ids else "all", more_ids=max(0, len(asked.ids) - LOGGED_IDS))
        await respond(send, 200, json.encode({DONE[action]: count}))


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValueError("the client disconnected before sending the whole body")
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_REQUEST_BYTES:
            raise ValueError("the body is too large")
        if not message.get("more_body", False):
            return b"".join(chunks)


def _local_name(host: bytes) -> bool:
    """Whether a ``Host`` header names the listener by an IP address or as localhost."""
    try:
        name = urllib.parse.urlsplit("//" + host.decode("latin-1")).hostname or ""
    except ValueError:
        return False
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
