"""A paginated JSON API on 127.0.0.1 for a polling source's tests: items behind a cursor, a
bearer token, and failures on demand (429 with ``Retry-After``, 5xx, a refused token).

The generic shape (what ``connector new-plugin NAME --polling`` polls)::

    GET {path}?cursor=C&limit=N     Authorization: Bearer {token}
    200 {"items": [...], "next_cursor": "...", "has_more": false}
    401 {"error": "unauthorized"}   without the token

A cursor is opaque; ``next_cursor`` is always given (the position after the last item), so a
source keeps it and asks again later for what came since. A fake of a real vendor's API
subclasses it to speak that vendor's documented shapes: ``page(query)`` (the answer to an
authorized request; read the items with ``snapshot()``, honour ``page_size`` as the largest page),
``authorized(headers)`` (its credentials scheme), ``refusal`` (the answer without them) and
``failure(status)`` (the body of a failure made with ``fail``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import msgspec

from .servers import ThreadedServer


@dataclass(frozen=True)
class APIRequest:
    """One request the fake answered: when (``time.monotonic()``), its query, its status."""

    at: float
    query: dict[str, str]
    status: int


class FakePagedAPI(ThreadedServer):
    """Serves ``items`` page by page at ``path``. ``add(items)`` publishes more; ``fail(status,
    retry_after=None, times=1)`` answers the next requests with ``status``; ``refuse()`` /
    ``accept()`` turn the token's refusal on and off; ``delay`` slows every answer; ``requests``
    lists what was asked."""

    refusal: tuple[int, Any] = (401, {"error": "unauthorized"})  # the answer without the token (body None: empty)

    def __init__(self, items: list[Any] | None = None, token: str = "api-token", path: str = "/items",
                 page_size: int = 100):
        super().__init__(self._app)
        self.items: list[Any] = list(items or [])
        self.token = token
        self.path = path
        self.page_size = page_size
        self.requests: list[APIRequest] = []
        self.refusing = False
        self.delay = 0.0  # seconds every answer waits
        self._script: collections.deque[tuple[int, float | None]] = collections.deque()
        self._lock = threading.Lock()

    def add(self, items: list[Any]) -> None:
        """Publish more items (they come after every item there is)."""
        with self._lock:
            self.items.extend(items)

    def snapshot(self) -> list[Any]:
        """The items published so far (a copy: ``add`` may run meanwhile, from the test's thread)."""
        with self._lock:
            return list(self.items)

    def fail(self, status: int, retry_after: float | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After`` when given)."""
        with self._lock:
            self._script.extend([(status, retry_after)] * times)

    def refuse(self) -> None:
        """Refuse the token (401) until ``accept()``: a revoked API key."""
        self.refusing = True

    def accept(self) -> None:
        self.refusing = False

    def authorized(self, headers: dict[str, str]) -> bool:
        """Whether the request carries the token (override for another scheme)."""
        return not self.refusing and headers.get("authorization") == f"Bearer {self.token}"

    def failure(self, status: int) -> Any:
        """The JSON body of a failure made with ``fail`` (override for the vendor's error shape)."""
        return {"error": f"scripted failure {status}"}

    def page(self, query: dict[str, str]) -> tuple[int, Any]:
        """The answer to an authorized request (status, JSON body): the generic cursor shape."""
        try:
            offset = int(base64.urlsafe_b64decode(query["cursor"]).decode()) if query.get("cursor") else 0
            limit = min(int(query.get("limit", self.page_size)), self.page_size)
        except ValueError:
            return 400, {"error": "bad cursor or limit"}
        published = self.snapshot()
        items = published[offset:offset + limit]
        more = offset + len(items) < len(published)
        following = base64.urlsafe_b64encode(str(offset + len(items)).encode()).decode()
        return 200, {"items": items, "next_cursor": following, "has_more": more}

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        query = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        extra: list[tuple[bytes, bytes]] = []
        if scope["path"] != self.path:
            status, body = 404, {"error": "not found"}
        elif not self.authorized(headers):
            status, body = self.refusal
        else:
            with self._lock:
                scripted = self._script.popleft() if self._script else None
            if scripted is None:
                status, body = self.page(query)
            else:
                status, body = scripted[0], self.failure(scripted[0])
                if scripted[1] is not None:
                    extra.append((b"retry-after", str(scripted[1]).encode()))
        self.requests.append(APIRequest(time.monotonic(), query, status))
        if self.delay:
            await asyncio.sleep(self.delay)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *extra]})
        await send({"type": "http.response.body", "body": b"" if body is None else msgspec.json.encode(body)})
