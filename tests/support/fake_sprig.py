"""A local stand-in for Sprig's REST export (``GET /v1/responses``), speaking its documented shapes.

As docs.sprig.com "Retrieve Responses" documents it: ``authorization: Bearer <api key>`` (403
without a body otherwise), ``start``/``end`` epoch ms, ``limit``, an opaque base64 ``cursor``,
``{"cursor": ..., "data": [...]}``; ``visitorSnapshot`` only with ``with_snapshots=true``; 404
("could not find responses matching this query") for a window with no responses.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from connector.testing import FakePagedAPI


def created_ms(row: dict[str, Any]) -> int:
    """A row's ``createdAt`` (ISO 8601) in epoch milliseconds."""
    moment = datetime.datetime.fromisoformat(row["createdAt"].replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


class FakeSprigAPI(FakePagedAPI):
    """Serves ``rows`` by window (``start`` inclusive, ``end`` exclusive) and cursor; ``fail``,
    ``refuse``, ``delay`` and ``requests`` as ``FakePagedAPI``'s."""

    refusal = (403, None)  # "There is no message with this status code."

    def __init__(self, rows: list[dict[str, Any]], api_key: str = "sprig-key"):
        super().__init__(sorted(rows, key=created_ms), token=api_key, path="/v1/responses", page_size=1000)

    def add(self, items: list[Any]) -> None:
        with self._lock:
            self.items = sorted([*self.items, *items], key=created_ms)

    def page(self, query: dict[str, str]) -> tuple[int, Any]:
        start, end, limit = int(query["start"]), int(query["end"]), int(query.get("limit", 1000))
        offset = int(base64.b64decode(query["cursor"]).decode()) if "cursor" in query else 0
        window = [r for r in self.snapshot() if start <= created_ms(r) < end]
        page = window[offset:offset + limit]
        if not page:
            return 404, {"error": "could not find responses matching this query"}
        if query.get("with_snapshots") != "true":
            page = [{k: v for k, v in r.items() if k != "visitorSnapshot"} for r in page]
        more = offset + limit < len(window)
        cursor = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        return 200, {"cursor": cursor, "data": page}
