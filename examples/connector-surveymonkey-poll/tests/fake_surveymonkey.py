"""A local stand-in for SurveyMonkey's bulk responses API, speaking its documented shapes.

Read from SurveyMonkey's API v3 docs, https://api.surveymonkey.com/v3/docs (sections "Survey
Responses" ``/surveys/{id}/responses/bulk``, "Pagination", "Data Types", "Error Codes"), whose
source SurveyMonkey publishes at https://github.com/SurveyMonkey/public_api_docs
(``includes/_responses.md``, ``includes/_overview.md``):

- ``GET /v3/surveys/{survey_id}/responses/bulk`` with ``Authorization: bearer <access token>``
  (the docs' text says "bearer", their examples "Bearer": the scheme is matched in any case);
- ``page`` (default 1), ``per_page`` ("Max of 100 allowed per page. Defaults to 50"),
  ``start_modified_at`` ("Responses modified after this date"), ``sort_by=date_modified``,
  ``sort_order`` ``ASC`` or ``DESC``;
- ``{"data": [...], "per_page", "page", "total", "links": {"self", "first", "last", "prev"?, "next"?}}``;
- errors as ``{"error": {"id", "name", "docs", "message", "http_status_code"}}``: 1011 (401)
  for a refused token, 1003 (400) for bad URL parameters.

Where the docs are silent the fake picks, and says so: ``start_modified_at`` is inclusive
(``inclusive = False`` makes it strict); without ``sort_order`` it answers newest first (the docs
give no default), so a source that forgets ``sort_order=ASC`` fails its tests.
"""

from __future__ import annotations

import datetime
import math
import urllib.parse
from typing import Any

from connector.testing import FakePagedAPI

DOCS = "https://developer.surveymonkey.com/api/v3/#error-codes"


def modified(response: dict[str, Any]) -> datetime.datetime:
    """A response's ``date_modified`` (``YYYY-MM-DDTHH:MM:SS+HH:MM``)."""
    return datetime.datetime.fromisoformat(response["date_modified"])


def error(code: str, name: str, message: str, status: int) -> dict[str, Any]:
    return {"error": {"id": code, "name": name, "docs": DOCS, "message": message, "http_status_code": status}}


class FakeSurveyMonkeyAPI(FakePagedAPI):
    """Serves ``responses`` of one survey, oldest ``date_modified`` first when asked ``ASC``;
    ``edit(id, **changes)`` saves a response again; ``fail``, ``refuse``, ``delay`` and
    ``requests`` as ``FakePagedAPI``'s."""

    refusal = (401, error("1011", "Authorization Error", "The authorization token provided was invalid.", 401))
    inclusive = True  # whether start_modified_at includes responses modified at that very second

    def __init__(self, responses: list[dict[str, Any]] | None = None, access_token: str = "sm-access-token",
                 survey_id: str = "105723396"):
        super().__init__(sorted(responses or [], key=modified), token=access_token,
                         path=f"/v3/surveys/{survey_id}/responses/bulk", page_size=100)

    def add(self, items: list[Any]) -> None:
        with self._lock:
            self.items = sorted([*self.items, *items], key=modified)

    def edit(self, response_id: str, **changes: Any) -> dict[str, Any]:
        """Save response ``response_id`` again with ``changes`` (give a later ``date_modified``)."""
        with self._lock:
            [edited] = [{**r, **changes} for r in self.items if r["id"] == response_id]
            self.items = sorted([*(r for r in self.items if r["id"] != response_id), edited], key=modified)
        return edited

    def authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return not self.refusing and scheme.lower() == "bearer" and token == self.token

    def page(self, query: dict[str, str]) -> tuple[int, Any]:
        try:
            number, per_page = int(query.get("page", "1")), int(query.get("per_page", "50"))
            since = query.get("start_modified_at") and datetime.datetime.fromisoformat(query["start_modified_at"])
        except ValueError:
            return 400, error("1003", "Bad Request", "Invalid URL parameters.", 400)
        order = query.get("sort_order", "DESC")
        if number < 1 or not 1 <= per_page <= 100 or order not in ("ASC", "DESC") \
                or query.get("sort_by", "date_modified") != "date_modified":
            return 400, error("1003", "Bad Request", "Invalid URL parameters.", 400)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=datetime.UTC)  # "All date strings are implicitly in UTC"
        with self._lock:
            rows = [r for r in self.items if since is None or modified(r) > since
                    or (self.inclusive and modified(r) == since)]
        if order == "DESC":
            rows.reverse()
        last = max(1, math.ceil(len(rows) / per_page))
        links = {"self": self._link(query, number), "first": self._link(query, 1), "last": self._link(query, last)}
        if number > 1:
            links["prev"] = self._link(query, number - 1)
        if number < last:
            links["next"] = self._link(query, number + 1)
        return 200, {"data": rows[(number - 1) * per_page:number * per_page], "per_page": per_page, "page": number,
                     "total": len(rows), "links": links}

    def _link(self, query: dict[str, str], number: int) -> str:
        return f"{self.url}{self.path}?{urllib.parse.urlencode({**query, 'page': number})}"


def response(response_id: str, date_modified: str, user_id: str | None = "user-1", **fields: Any) -> dict[str, Any]:
    """A bulk response as the docs' example shows one (``simple`` not asked: ids, no texts)."""
    return {
        "total_time": 41, "collection_mode": "default",
        "href": f"https://api.surveymonkey.com/v3/responses/{response_id}",
        "custom_variables": {"user_id": user_id} if user_id is not None else {},
        "custom_value": "", "edit_url": "https://www.surveymonkey.com/r/", "ip_address": "",
        "analyze_url": f"https://www.surveymonkey.com/analyze/browse/?respondent_id={response_id}",
        "pages": [{"id": "103332310", "questions": [{"id": "319352786", "answers": [{"choice_id": "3057839051"}]}]}],
        "date_modified": date_modified, "response_status": "completed", "id": response_id,
        "collector_id": "50253586", "recipient_id": "0", "date_created": date_modified, "survey_id": "105723396",
        **fields,
    }
