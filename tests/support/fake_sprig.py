"""A local stand-in for Sprig's REST export (``GET /v1/responses``), speaking its documented shapes.

As docs.sprig.com "Retrieve Responses" documents it: ``authorization: Bearer <api key>`` (403
without a body otherwise), ``start``/``end`` epoch ms, ``limit``, an opaque base64 ``cursor``,
``{"cursor": ..., "data": [...]}``; ``visitorSnapshot`` only with ``with_snapshots=true``; 404
("could not find responses matching this query") for a window with no responses.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime
import urllib.parse
from typing import Any

import msgspec

from connector.testing import ThreadedServer


def created_ms(row: dict[str, Any]) -> int:
    """A row's ``createdAt`` (ISO 8601) in epoch milliseconds."""
    moment = datetime.datetime.fromisoformat(row["createdAt"].replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


class FakeSprigAPI(ThreadedServer):
    """Serves ``rows`` by window (``start`` inclusive, ``end`` exclusive) and cursor.

    ``script`` fails requests in order (an HTTP status, or ``(status, retry_after)``);
    ``api_key`` may be changed at any time; ``page_delay`` slows every answer; ``log`` lists
    (start, end, cursor, status, query) of each request.
    """

    def __init__(self, rows: list[dict[str, Any]], api_key: str = "sprig-key"):
        super().__init__(self._app)
        self.rows = sorted(rows, key=created_ms)
        self.api_key = api_key
        self.script: collections.deque[Any] = collections.deque()
        self.page_delay = 0.0
        self.log: list[tuple[int, int, str | None, int, dict[str, str]]] = []

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows = sorted([*self.rows, *rows], key=created_ms)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        query = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        status, body, extra = self._answer(scope["path"], headers, query)
        self.log.append((int(query.get("start", -1)), int(query.get("end", -1)), query.get("cursor"), status, query))
        if self.page_delay:
            await asyncio.sleep(self.page_delay)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *extra]})
        await send({"type": "http.response.body", "body": b"" if body is None else msgspec.json.encode(body)})

    def _answer(self, path: str, headers: dict[str, str], query: dict[str, str]) -> tuple[int, Any, list]:
        if path != "/v1/responses":
            return 404, {"error": "Not Found"}, []
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 403, None, []  # "There is no message with this status code."
        if self.script:
            action = self.script.popleft()
            if isinstance(action, tuple):
                return action[0], None, [(b"retry-after", str(action[1]).encode())]
            return action, None, []
        start, end, limit = int(query["start"]), int(query["end"]), int(query.get("limit", 1000))
        offset = int(base64.b64decode(query["cursor"]).decode()) if "cursor" in query else 0
        window = [r for r in self.rows if start <= created_ms(r) < end]
        page = window[offset:offset + limit]
        if not page:
            return 404, {"error": "could not find responses matching this query"}, []
        if query.get("with_snapshots") != "true":
            page = [{k: v for k, v in r.items() if k != "visitorSnapshot"} for r in page]
        more = offset + limit < len(window)
        cursor = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        return 200, {"cursor": cursor, "data": page}, []
