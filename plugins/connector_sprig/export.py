"""The ``sprig_export`` source: polls Sprig's REST export (``GET /v1/responses``) for responses.

Each poll covers a window of time, ``start`` (inclusive) to ``end`` (exclusive), in epoch
milliseconds, paged with Sprig's opaque ``cursor``. The window and the cursor of the next page
are checkpointed in the buffer in the same transaction as the page's records, so a restart
resumes at the next page: no page is skipped or stored twice. The next window starts where the
last one ended.

Sprig's answers: 404 means the window holds no responses (it is moved past); 401/403 (a refused
key) and 400 pause the source, so the admin ``/status`` names it, and it asks again with backoff until
the key works; 429, 5xx, timeouts and network errors back off, honouring ``Retry-After``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import msgspec

import connector

if TYPE_CHECKING:  # imported when the source runs: every daemon loads this module with the plugin
    import httpx

RETRY_INITIAL_SECONDS = 0.5


class SprigExportConfig(connector.SourceConfig, tag="sprig_export"):
    """``type = "sprig_export"``.

    ``api_key``: a Sprig API key. ``start``: epoch ms where the first run begins (default: the
    moment it first runs, i.e. only new responses). ``with_snapshots`` asks Sprig for each
    response's visitor snapshot, which fills the track's ``attributes`` and ``triggeringEvent``.
    """

    api_key: connector.Secret
    base_url: str = "https://api.sprig.com"
    poll_interval: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1000
    start: int | None = None
    with_snapshots: bool = True
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    retry_max_seconds: Annotated[float, msgspec.Meta(gt=0)] = 300.0

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        return SprigExport(self, ctx.log, ctx.metrics)


class Window(msgspec.Struct, frozen=True):
    """Where the poller is: the window being paged and the cursor of its next page."""

    start: int
    end: int | None = None
    cursor: str | None = None


class Page(msgspec.Struct):
    """One answer of ``GET /v1/responses``: rows, and the cursor of the next page (if any)."""

    data: list[Any] = []
    cursor: str | None = None


class PageError(Exception):
    """A page could not be fetched. ``retry_after``: how long the API asked to wait;
    ``refused``: the request itself is refused (key, parameters), not a passing failure."""

    def __init__(self, reason: str, retry_after: float | None = None, refused: bool = False):
        super().__init__(reason)
        self.retry_after = retry_after
        self.refused = refused


_page_decoder = msgspec.json.Decoder(Page)


class SprigExport(connector.PollingSource):
    """Pages through new responses every ``poll_interval`` seconds."""

    def __init__(self, config: SprigExportConfig, log: Any, metrics: connector.ComponentMetrics):
        self.config = config
        self.log = log
        self.metrics = metrics
        self.url = config.base_url.rstrip("/") + "/v1/responses"

    async def run(self, ctx: connector.SourceContext) -> None:
        saved = await ctx.checkpoint()
        window = msgspec.json.decode(saved, type=Window) if saved else Window(self.config.start or _now_ms())
        headers = {"authorization": f"Bearer {self.config.api_key}", "accept": "application/json"}
        import httpx

        async with httpx.AsyncClient(timeout=self.config.timeout, headers=headers) as client:
            while True:
                end = _now_ms() if window.end is None else window.end
                window = Window(window.start, end, window.cursor)
                page = await self._fetch_with_retries(client, ctx, window)
                rows = page.data if page is not None else []
                cursor = page.cursor if page is not None and rows else None
                following = Window(window.start, end, cursor) if cursor else Window(end)
                await ctx.append(rows, checkpoint=msgspec.json.encode(following))
                window = following
                if cursor is None:
                    await anyio.sleep(self.config.poll_interval)

    async def _fetch_with_retries(self, client: httpx.AsyncClient, ctx: connector.SourceContext,
                                  window: Window) -> Page | None:
        """The window's next page; None when Sprig has no responses in it (404)."""
        attempt = 0
        while True:
            try:
                page = await self._fetch(client, window)
            except PageError as exc:
                if exc.refused:
                    ctx.pause(f"Sprig refused the export request ({exc}); check api_key")
                else:
                    ctx.error(str(exc))
                delay = exc.retry_after
                if delay is None:
                    delay = connector.full_jitter(attempt, RETRY_INITIAL_SECONDS, self.config.retry_max_seconds)
                self.log.warning("sprig export retrying", reason=str(exc), attempt=attempt + 1,
                                 delay_seconds=round(delay, 3))
                attempt += 1
                await anyio.sleep(delay)
                continue
            ctx.resume()
            return page

    async def _fetch(self, client: httpx.AsyncClient, window: Window) -> Page | None:
        params: dict[str, Any] = {"start": window.start, "end": window.end, "limit": self.config.limit}
        if window.cursor:
            params["cursor"] = window.cursor
        if self.config.with_snapshots:
            params["with_snapshots"] = "true"
        import httpx

        started = time.perf_counter()
        try:
            response = await client.get(self.url, params=params)
        except httpx.TimeoutException:
            raise PageError("timeout") from None
        except httpx.TransportError as exc:
            raise PageError(f"connection error ({type(exc).__name__})") from None
        self.metrics.observe_request(time.perf_counter() - started)
        status = response.status_code
        if status == 404:  # Sprig: "could not find responses matching this query"
            return None
        if status in (400, 401, 403):
            raise PageError(f"HTTP {status}: {response.text[:200]}", refused=True)
        if status != 200:
            wait = connector.retry_after_seconds(response.headers.get("retry-after"), self.config.retry_max_seconds)
            raise PageError(f"HTTP {status}: {response.text[:200]}", wait)
        try:
            return _page_decoder.decode(response.content)
        except msgspec.DecodeError as exc:  # also ValidationError
            raise PageError(f"unexpected page (expected {{\"cursor\": ..., \"data\": [...]}}): {exc}") from None


def _now_ms() -> int:
    return int(time.time() * 1000)
