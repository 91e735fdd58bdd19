"""A local stand-in for Sprig's REST export (``GET /v1/responses``), for the poller's tests."""

from __future__ import annotations

import asyncio
import base64
import collections
import urllib.parse
from typing import Any

import msgspec

from connector.testing import ThreadedServer


class FakeSprigAPI(ThreadedServer):
    """Serves ``responses`` (each with an epoch-ms ``createdAt``) by window and opaque cursor.

    ``start`` is inclusive and ``end`` exclusive. ``script`` fails requests in order (an HTTP
    status, or ``(429, seconds)``); ``page_delay`` slows every page; ``log`` lists the
    (start, end, cursor, status) of each request.
    """

    def __init__(self, responses: list[dict[str, Any]], api_key: str = "sprig-key"):
        super().__init__(self._app)
        self.responses = sorted(responses, key=lambda r: r["createdAt"])
        self.api_key = api_key
        self.script: collections.deque[Any] = collections.deque()
        self.page_delay = 0.0
        self.log: list[tuple[int, int, str | None, int]] = []

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        query = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        status, body, extra = self._answer(scope["path"], headers, query)
        self.log.append((int(query.get("start", -1)), int(query.get("end", -1)), query.get("cursor"), status))
        if self.page_delay:
            await asyncio.sleep(self.page_delay)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *extra]})
        await send({"type": "http.response.body", "body": msgspec.json.encode(body)})

    def _answer(self, path: str, headers: dict[str, str], query: dict[str, str]) -> tuple[int, Any, list]:
        if path != "/v1/responses":
            return 404, {"error": "not found"}, []
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "unauthorized"}, []
        if self.script:
            action = self.script.popleft()
            if isinstance(action, tuple):
                return action[0], {"error": "slow down"}, [(b"retry-after", str(action[1]).encode())]
            return action, {"error": "scripted failure"}, []
        start, end, limit = int(query["start"]), int(query["end"]), int(query.get("limit", 1000))
        offset = int(base64.urlsafe_b64decode(query["cursor"]).decode()) if "cursor" in query else 0
        window = [r for r in self.responses if start <= r["createdAt"] < end]
        page = window[offset:offset + limit]
        more = offset + limit < len(window)
        cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None
        return 200, {"data": page, "cursor": cursor}, []
