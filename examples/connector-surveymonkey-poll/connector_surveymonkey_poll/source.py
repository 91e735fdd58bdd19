"""The ``surveymonkey_responses`` source: polls SurveyMonkey's bulk responses API for new and edited responses.

As SurveyMonkey's API v3 docs (https://api.surveymonkey.com/v3/docs: "Survey Responses",
"Pagination", "Data Types", "Error Codes", "Request and Response Limits") document it::

    GET {base_url}/v3/surveys/{survey_id}/responses/bulk       Authorization: Bearer <access token>
        ?sort_by=date_modified&sort_order=ASC&per_page=100&page=1&start_modified_at=2026-11-20T10:00:00+00:00
    200 {"data": [<response>...], "per_page": 100, "page": 1, "total": 7, "links": {"self": ..., "next": ...}}

Each response is stored whole, as SurveyMonkey sends it (``id``, ``date_modified``,
``custom_variables``, ``pages[].questions[].answers``...). An edited response comes again with a
later ``date_modified`` and its new content: it is a new record (its id is a hash of its body),
so the mapper sends the edit as a track of its own.

**Position.** Responses come oldest ``date_modified`` first; the checkpoint (``Position``, JSON)
is the position *after* the last stored response: its ``date_modified`` (``after``), the ids
already stored at exactly that moment (``seen``), and the page being read from there (above 1
only while a page holds nothing new: more responses share one second than fit a page). Each
request asks from one second before ``after``, and the source drops what it has already stored:
the docs do not say whether ``start_modified_at`` ("Responses modified after this date") is
inclusive, and dates have whole seconds, so either way a response saved in the same second as
the last stored one, after the poll that stored it, is neither lost nor stored twice. (Pages are
offsets, SurveyMonkey has no cursor: only while pages beyond the first are read, in such a
crowded second, can a response edited between two requests shift one response out of sight.)

**Failures.** 429 (error 1040), 5xx, timeouts and network errors are ``ctx.error`` and retried
with backoff, waiting as ``Retry-After`` asks (undocumented, honoured when sent) or, when the
documented ``X-Ratelimit-App-Global-*-Remaining`` headers say a limit is used up, until its
``-Reset``. 401 (a missing, wrong, expired or revoked token), 403 (scope, plan, quota, or the
account's region: error 1018 means ``base_url`` should be its ``access_url``), 400 and 404 (bad
parameters, an unknown survey) pause the source with the config key to fix; it asks again with
backoff and resumes once a request succeeds.
"""

from __future__ import annotations

import datetime
import time
from typing import Annotated, Any

import anyio
import httpx
import msgspec

import connector

RETRY_INITIAL_SECONDS = 0.5
OVERLAP = datetime.timedelta(seconds=1)  # each request starts one second before the position: see the docstring
_REFUSALS = {400: "check start_modified_at", 401: "check access_token", 404: "check survey_id",
             403: "check access_token (its scopes and the account's plan) and survey_id"}


class SurveyMonkeyResponsesConfig(connector.SourceConfig, tag="surveymonkey_responses"):
    """``type = "surveymonkey_responses"``.

    ``access_token``: the app's access token (a private app's, or one from OAuth). ``survey_id``:
    the survey whose responses to poll. ``base_url``: the account's API host (the ``access_url``
    its token came with: it depends on the account's datacenter). ``start_modified_at``: where
    the first run begins (ISO 8601; UTC when it has no offset); default: the moment it first runs,
    i.e. only new responses. ``simple``: ask for the question and answer texts besides their ids.
    """

    access_token: connector.Secret
    survey_id: str
    base_url: str = "https://api.surveymonkey.com"
    per_page: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    poll_interval: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    start_modified_at: str | None = None
    simple: bool = False
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    retry_max_seconds: Annotated[float, msgspec.Meta(gt=0)] = 300.0

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        if not self.access_token:
            raise connector.ConfigError(f"sources.{ctx.name}.access_token: must not be empty")
        if not self.survey_id.strip() or "/" in self.survey_id:
            raise connector.ConfigError(f"sources.{ctx.name}.survey_id: must be a survey's id, e.g. \"105723396\"")
        if self.start_modified_at is not None:
            try:
                parse_moment(self.start_modified_at)
            except ValueError:
                raise connector.ConfigError(f"sources.{ctx.name}.start_modified_at: {self.start_modified_at!r} is not "
                                            "an ISO 8601 date and time, e.g. \"2026-11-20T10:00:00+00:00\"") from None
        return SurveyMonkeyResponses(self, ctx.log, ctx.metrics)


class Position(msgspec.Struct, frozen=True):
    """The checkpoint: the last stored ``date_modified`` (or the configured start), the ids stored
    at exactly that moment, and the page to read next from there."""

    after: str
    seen: tuple[str, ...] = ()
    page: int = 1


class Links(msgspec.Struct, frozen=True):
    """A page's ``links``: ``next`` is there when there is a next page."""

    next: str | None = None


class Page(msgspec.Struct):
    """One answer of ``GET /v3/surveys/{id}/responses/bulk``: responses, and whether more follow."""

    data: list[dict[str, Any]] = []
    links: Links = Links()


class ErrorDetail(msgspec.Struct):
    """SurveyMonkey's error body: ``{"error": {"id": "1011", "name": ..., "message": ..., ...}}``."""

    id: str | int | None = None
    name: str | None = None
    message: str | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class FetchFailed(Exception):
    """A page could not be fetched. ``retry_after``: how long the API asked to wait;
    ``refused``: the request is refused for a reason the user must fix (token, survey, parameters)."""

    def __init__(self, reason: str, retry_after: float | None = None, refused: bool = False):
        super().__init__(reason)
        self.retry_after = retry_after
        self.refused = refused


_decode_page = msgspec.json.Decoder(Page).decode
_decode_error = msgspec.json.Decoder(ErrorBody).decode
_decode_position = msgspec.json.Decoder(Position).decode


def parse_moment(value: str) -> datetime.datetime:
    """An ISO 8601 date and time as an aware UTC datetime (UTC when it has no offset: SurveyMonkey's
    date strings are "implicitly in UTC")."""
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def date_string(moment: datetime.datetime) -> str:
    """SurveyMonkey's documented date string, ``YYYY-MM-DDTHH:MM:SS+HH:MM``, in UTC (seconds floored)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def advance(position: Position, rows: list[dict[str, Any]], more: bool) -> tuple[list[dict[str, Any]], Position]:
    """What of ``rows`` (a page read at ``position``) is new, and the position after it.

    New: modified after ``position.after``, or at that very moment and not among ``seen``.
    Raises ``FetchFailed`` for a response without an ``id`` or a readable ``date_modified``.
    """
    after = parse_moment(position.after)
    seen = set(position.seen)
    latest, at_latest = after, list(position.seen)
    fresh = []
    for row in rows:
        response_id, moment = _identity(row)
        if moment < after or (moment == after and response_id in seen):
            continue
        fresh.append(row)
        if moment > latest:
            latest, at_latest = moment, [response_id]
        elif moment == latest and response_id not in at_latest:
            at_latest.append(response_id)
    if latest > after:  # the position moved: read from its first page
        return fresh, Position(latest.isoformat(), tuple(at_latest), 1)
    return fresh, Position(position.after, tuple(at_latest), position.page + 1 if more else 1)


def _identity(row: dict[str, Any]) -> tuple[str, datetime.datetime]:
    response_id, modified = row.get("id"), row.get("date_modified")
    if not isinstance(response_id, (str, int)) or isinstance(response_id, bool) or not isinstance(modified, str):
        raise FetchFailed(f"unexpected response in the page: no id or date_modified ({sorted(row)[:12]})")
    try:
        return str(response_id), parse_moment(modified)
    except ValueError:
        raise FetchFailed(f"unexpected date_modified {modified[:40]!r} in response {response_id}") from None


class SurveyMonkeyResponses(connector.PollingSource):
    """Reads new and edited responses page by page, oldest first; sleeps ``poll_interval`` once caught up."""

    def __init__(self, config: SurveyMonkeyResponsesConfig, log: Any, metrics: connector.ComponentMetrics):
        self.config = config
        self.log = log
        self.metrics = metrics
        self.url = f"{config.base_url.rstrip('/')}/v3/surveys/{config.survey_id.strip()}/responses/bulk"

    async def run(self, ctx: connector.SourceContext) -> None:
        saved = await ctx.checkpoint()
        if saved:
            position = _decode_position(saved)
        else:
            start = self.config.start_modified_at
            position = Position(parse_moment(start).isoformat() if start else date_string(_now()))
            if start is None:  # keep the moment of the first run: a restart must not start later
                await ctx.append([], checkpoint=msgspec.json.encode(position))
        headers = {"authorization": f"Bearer {self.config.access_token}", "accept": "application/json"}
        async with httpx.AsyncClient(timeout=self.config.timeout, headers=headers) as client:
            while True:
                page = await self._fetch_with_retries(client, ctx, position)
                more = page.links.next is not None
                try:
                    fresh, following = advance(position, page.data, more)
                except FetchFailed as exc:  # a page the source cannot place: ask again later
                    ctx.error(str(exc))
                    await anyio.sleep(self.config.poll_interval)
                    continue
                if fresh:
                    await ctx.append(fresh, checkpoint=msgspec.json.encode(following))
                position = following
                if not more:
                    await anyio.sleep(self.config.poll_interval)

    async def _fetch_with_retries(self, client: httpx.AsyncClient, ctx: connector.SourceContext,
                                  position: Position) -> Page:
        attempt = 0
        while True:
            try:
                page = await self._fetch(client, position)
            except FetchFailed as exc:
                reason = str(exc).replace(self.config.access_token, "***")
                if exc.refused:
                    ctx.pause(reason)
                else:
                    ctx.error(reason)
                delay = exc.retry_after
                if delay is None:
                    delay = connector.full_jitter(attempt, RETRY_INITIAL_SECONDS, self.config.retry_max_seconds)
                self.log.warning("surveymonkey poll retrying", reason=reason, attempt=attempt + 1,
                                 delay_seconds=round(delay, 3))
                attempt += 1
                await anyio.sleep(delay)
                continue
            ctx.resume()
            return page

    async def _fetch(self, client: httpx.AsyncClient, position: Position) -> Page:
        params: dict[str, Any] = {
            "sort_by": "date_modified", "sort_order": "ASC", "per_page": self.config.per_page, "page": position.page,
            "start_modified_at": date_string(parse_moment(position.after) - OVERLAP),
        }
        if self.config.simple:
            params["simple"] = "true"
        started = time.perf_counter()
        try:
            response = await client.get(self.url, params=params)
        except httpx.TimeoutException:
            raise FetchFailed("timeout") from None
        except httpx.TransportError as exc:
            raise FetchFailed(f"connection error ({type(exc).__name__})") from None
        self.metrics.observe_request(time.perf_counter() - started)
        status = response.status_code
        if status in _REFUSALS:
            fix = _REFUSALS[status]
            error = _error_text(response.content)
            if status == 403 and error.startswith("1018 "):
                fix = "check base_url (the account's access_url)"
            raise FetchFailed(f"SurveyMonkey refused the request (HTTP {status}: {error}); {fix}", refused=True)
        if status != 200:
            wait = _wait(response.headers, self.config.retry_max_seconds)
            raise FetchFailed(f"HTTP {status}: {_error_text(response.content)}", wait)
        try:
            return _decode_page(response.content)
        except msgspec.DecodeError as exc:  # also a ValidationError
            raise FetchFailed(f"unexpected page (expected {{\"data\": [...], \"links\": {{...}}}}): {exc}") from None


def _error_text(body: bytes) -> str:
    """``"<id> <name>: <message>"`` from SurveyMonkey's error body, else the body's start."""
    try:
        error = _decode_error(body).error
    except msgspec.DecodeError:
        return body[:200].decode("utf-8", "replace") or "no body"
    return f"{error.id} {error.name}: {error.message}"


def _wait(headers: httpx.Headers, cap: float) -> float | None:
    """How long a 429 or 5xx asks to wait: ``Retry-After``, else the reset of a used-up rate limit."""
    wait = connector.retry_after_seconds(headers.get("retry-after"), cap)
    for window in ("minute", "day"):
        if wait is None and headers.get(f"x-ratelimit-app-global-{window}-remaining", "").strip() == "0":
            wait = connector.retry_after_seconds(headers.get(f"x-ratelimit-app-global-{window}-reset"), cap)
    return wait


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
