"""The ``sprig_export`` source: polls Sprig's REST export (``GET /v1/responses``) for responses.

Each poll covers a window of time, ``start`` (inclusive) to ``end`` (exclusive), in epoch
milliseconds, paged with Sprig's opaque ``cursor``. The window and the cursor of the next page
are checkpointed in the buffer in the same transaction as the page's records, so a restart
resumes at the next page: no page is skipped or stored twice. The next window starts where the
last one ended. 429 (honouring Retry-After), 5xx and network errors back off exponentially.
"""

from __future__ import annotations

import random
import time
from typing import Annotated, Any

import anyio
import httpx
import msgspec

import connector


class SprigExportConfig(connector.SourceConfig, tag="sprig_export"):
    """``type = "sprig_export"``.

    ``api_key``: a Sprig API key. ``start``: epoch ms where the first run begins (default: the
    moment it first runs, i.e. only new responses). ``items_field`` and ``cursor_field`` name the
    page's list of responses and its next-page cursor.
    """

    api_key: connector.Secret
    base_url: str = "https://api.sprig.com"
    poll_interval: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1000
    start: int | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    retry_max_seconds: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    items_field: str = "data"
    cursor_field: str = "cursor"

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        return SprigExport(self, ctx.log)


class Window(msgspec.Struct, frozen=True):
    """Where the poller is: the window being paged and the cursor of its next page."""

    start: int
    end: int | None = None
    cursor: str | None = None


class PageError(Exception):
    """A page could not be fetched; ``retry_after`` when the API said how long to wait."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class SprigExport(connector.PollingSource):
    """Pages through new responses every ``poll_interval`` seconds."""

    def __init__(self, config: SprigExportConfig, log: Any):
        self.config = config
        self.log = log
        self.url = config.base_url.rstrip("/") + "/v1/responses"

    async def run(self, ctx: connector.SourceContext) -> None:
        saved = await ctx.checkpoint()
        window = msgspec.json.decode(saved, type=Window) if saved else Window(self.config.start or _now_ms())
        headers = {"authorization": f"Bearer {self.config.api_key}", "accept": "application/json"}
        async with httpx.AsyncClient(timeout=self.config.timeout, headers=headers) as client:
            while True:
                if window.end is None:
                    window = Window(window.start, _now_ms())
                items, cursor = await self._fetch_with_retries(client, window)
                following = Window(window.start, window.end, cursor) if cursor else Window(window.end)  # type: ignore[arg-type]
                await ctx.append(items, checkpoint=msgspec.json.encode(following))
                window = following
                if cursor is None:
                    await anyio.sleep(self.config.poll_interval)

    async def _fetch_with_retries(self, client: httpx.AsyncClient, window: Window) -> tuple[list[Any], str | None]:
        attempt = 0
        while True:
            try:
                return await self._fetch(client, window)
            except PageError as exc:
                delay = exc.retry_after
                if delay is None:
                    delay = random.uniform(0, min(self.config.retry_max_seconds, 0.5 * 2 ** min(attempt, 20)))
                self.log.warning("sprig export retrying", reason=str(exc), attempt=attempt + 1,
                                 delay_seconds=round(delay, 3))
                attempt += 1
                await anyio.sleep(delay)

    async def _fetch(self, client: httpx.AsyncClient, window: Window) -> tuple[list[Any], str | None]:
        params: dict[str, Any] = {"start": window.start, "end": window.end, "limit": self.config.limit}
        if window.cursor:
            params["cursor"] = window.cursor
        try:
            response = await client.get(self.url, params=params)
        except httpx.TimeoutException:
            raise PageError("timeout") from None
        except httpx.TransportError as exc:
            raise PageError(f"connection error ({type(exc).__name__})") from None
        if response.status_code == 429:
            value = response.headers.get("retry-after", "")
            retry_after = min(float(value), self.config.retry_max_seconds) if value.replace(".", "", 1).isdigit() else None
            raise PageError("HTTP 429", retry_after)
        if response.status_code != 200:
            raise PageError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            page = msgspec.json.decode(response.content)
            items = page[self.config.items_field]
            cursor = page.get(self.config.cursor_field)
        except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
            raise PageError(f"unexpected page (expected an object with {self.config.items_field!r})") from None
        if not isinstance(items, list):
            raise PageError(f"unexpected page: {self.config.items_field!r} is not a list")
        return items, cursor or None


def _now_ms() -> int:
    return int(time.time() * 1000)
