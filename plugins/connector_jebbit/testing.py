"""``FakeJebbitAPI``: Jebbit's auth server and Integrations API on 127.0.0.1, for tests (a pytest plugin).

It speaks the shapes Jebbit documents (developers.jebbit.com, its OpenAPI files, the
"Integrations API - Overview" help page): ``POST /oauth/token`` with client credentials
(Auth0's ``{"error", "error_description"}`` when refused); JSON:API resources for ``self``,
``integrations``, ``integration_historic_backfills`` and ``integration_mappings``; errors as
``{"errors": [{"status", "title"}]}`` (a 404 without a body). Like Jebbit it posts to the
integration's endpoint: ``POST .../integrations/{id}/test`` sends the test delivery (the help
page's body, an array holding one JSON string, with ``x-jebbit-test``), and a backfill re-sends
``sessions`` (past experiences) as ordinary deliveries. Every delivery is signed
``x-jebbit-signature: t=...,v1=...`` with the integration's ``shared_secret``.

Jebbit documents the backfill states ``received`` and ``processing``; what follows is not
documented: this fake ends in ``completed``, or ``failed`` when the endpoint refused a delivery.

Fixture ``fake_jebbit``: a started fake, stopped after the test; ``fake.env()`` gives the
``JEBBIT_*`` variables that point the client at it.
"""

from __future__ import annotations

import asyncio
import datetime
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from connector.testing import ThreadedServer, read_body

from .signature import HEADER, TEST_HEADER, sign

TEST_DELIVERY = [
    '{"data":{"email":"test@example.com","test_attribute":"attribute_value",'
    '"test_sata_attribute":["option 1","option 4"],"opt_in":"true","outcome":"example_outcome"},'
    '"event":{"event_number":0}}'
]
UNAUTHORIZED = {"errors": [{"status": 401, "title": "Unauthorized Request"}]}
FORBIDDEN = {"errors": [{"status": 403, "title": "Forbidden"}]}
API = "/api/v1/"


class FakeJebbitAPI(ThreadedServer):
    """Jebbit's auth and API for one business; ``deliveries`` logs what it posted to endpoints.

    ``scopes`` are granted to the client (take ``write:integration`` away to see a 403);
    ``sessions`` are the experiences a backfill re-sends; ``backfill_step_seconds`` paces a
    backfill's states. ``token_requests`` counts tokens handed out.
    """

    def __init__(self, client_id: str = "fake-client-id", client_secret: str = "fake-client-secret-0123456789",
                 business_id: str = "bTUIhsye", business_name: str = "Jebbit Internal"):
        super().__init__(self._app)
        self.client_id = client_id
        self.client_secret = client_secret
        self.business_id = business_id
        self.business_name = business_name
        self.scopes = ["read:integration", "write:integration"]
        self.sessions: list[dict[str, Any]] = []
        self.backfill_step_seconds = 0.2
        self.integrations: dict[str, dict[str, Any]] = {}
        self.backfills: dict[str, dict[str, Any]] = {}
        self.mappings: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.requests: list[tuple[str, str, int]] = []  # method, path, status
        self.deliveries: list[tuple[str, str, int]] = []  # kind ("test", "backfill", "live"), endpoint, status
        self._tasks: set[asyncio.Task[None]] = set()

    def env(self) -> dict[str, str]:
        """The environment that points ``connector jebbit`` at this fake."""
        return {"JEBBIT_CLIENT_ID": self.client_id, "JEBBIT_CLIENT_SECRET": self.client_secret,
                "JEBBIT_API_URL": self.url, "JEBBIT_AUTH_URL": f"{self.url}/oauth/token"}

    def deliver(self, integration_id: str, experiences: list[dict[str, Any]]) -> httpx.Response:
        """Post ``experiences`` to the integration's endpoint as one live delivery (from the caller's thread)."""
        integration = self.integrations[integration_id]
        body = msgspec.json.encode(experiences)
        response = httpx.post(integration["endpoint"], content=body, headers=_signed(integration, body), timeout=10)
        self.deliveries.append(("live", integration["endpoint"], response.status_code))
        return response

    # -- HTTP -------------------------------------------------------------------------------

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, answer = self._answer(scope["method"], scope["path"], headers, body)
        self.requests.append((scope["method"], scope["path"], status))
        content = b"" if answer is None else msgspec.json.encode(answer)
        media = b"application/json" if scope["path"] == "/oauth/token" else b"application/vnd.api+json"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", media)]})
        await send({"type": "http.response.body", "body": content})

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if path == "/oauth/token" and method == "POST":
            return self._token(body)
        if not path.startswith(API):
            return 404, None
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return 401, UNAUTHORIZED
        business = headers.get("x-jebbit-business")
        if business is not None and business != self.business_id:
            return 403, FORBIDDEN
        parts = path[len(API):].strip("/").split("/")
        if parts == ["self"] and method == "GET":
            return 200, {"data": {"id": self.business_id, "type": "businesses",
                                  "attributes": {"name": self.business_name}}}
        needed = "read:integration" if method == "GET" else "write:integration"
        if needed not in self.scopes:
            return 403, FORBIDDEN
        document = msgspec.json.decode(body) if body else {}
        attributes = (document.get("data") or {}).get("attributes") or {} if isinstance(document, dict) else {}
        kind, rest = parts[0], parts[1:]
        if kind == "integrations":
            return self._integrations(method, rest, attributes)
        if kind == "integration_historic_backfills":
            return self._backfills(method, rest, attributes)
        if kind == "integration_mappings":
            return self._collection(self.mappings, "integration_mappings", method, rest, attributes)
        return 404, None

    def _token(self, body: bytes) -> tuple[int, Any]:
        try:
            request = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return 400, {"error": "invalid_request", "error_description": "body must be JSON"}
        if (not isinstance(request, dict) or request.get("client_id") != self.client_id
                or request.get("client_secret") != self.client_secret
                or request.get("audience") != "public-api" or request.get("grant_type") != "client_credentials"):
            return 401, {"error": "access_denied", "error_description": "Unauthorized"}
        token = "eyJ" + secrets.token_urlsafe(48)
        self.tokens.add(token)
        self.token_requests += 1
        return 200, {"access_token": token, "scope": " ".join([f"read:business:{self.business_id}", *self.scopes]),
                     "expires_in": 86400, "token_type": "Bearer"}

    def _integrations(self, method: str, rest: list[str], attributes: dict[str, Any]) -> tuple[int, Any]:
        if method == "POST" and not rest:
            if attributes.get("region", "us") not in ("us", "eu"):
                return 400, {"errors": [{"status": 400, "title": "must be a valid region (us|eu)"}]}
            now = _now()
            attributes = {"endpoint": None, "include_uids": False, "region": "us", "require_opt_in": None,
                          "created_at": now, "updated_at": now, "service_name": "webhooks_standard",
                          "include_mapped_attributes": True, "additional_options": {"hash_pii": False},
                          "is_active": True, **attributes, "shared_secret": secrets.token_urlsafe(25)}
        if len(rest) == 2 and rest[1] == "test" and method == "POST":
            integration = self.integrations.get(rest[0])
            if integration is None:
                return 404, None
            self._soon(self._post("test", integration, msgspec.json.encode(TEST_DELIVERY), test=True))
            return 200, TEST_DELIVERY
        return self._collection(self.integrations, "integrations", method, rest, attributes)

    def _backfills(self, method: str, rest: list[str], attributes: dict[str, Any]) -> tuple[int, Any]:
        if method == "POST" and not rest:
            integration = self.integrations.get(attributes.get("integration_id", ""))
            if integration is None:
                return 404, None
            if not integration["is_active"]:
                return 400, None  # documented: "cannot request a backfill for an inactive integration"
            now = _now()
            attributes = {"status": "received", "integration_id": attributes["integration_id"],
                          "created_at": now, "updated_at": now}
            status, answer = self._collection(self.backfills, "integration_historic_backfills", method, rest,
                                              attributes)
            self._soon(self._run_backfill(self.backfills[answer["data"]["id"]], integration))
            return status, answer
        return self._collection(self.backfills, "integration_historic_backfills", method, rest, attributes)

    def _collection(self, store: dict[str, dict[str, Any]], type_: str, method: str, rest: list[str],
                    attributes: dict[str, Any]) -> tuple[int, Any]:
        """Index, create, show, update and delete resources of one type, JSON:API style."""
        if not rest:
            if method == "GET":
                return 200, {"data": [_resource(type_, id, a) for id, a in store.items()]}
            if method == "POST":
                id = secrets.token_hex(4)
                store[id] = attributes
                return 201, {"data": _resource(type_, id, attributes)}
            return 405, None
        found = store.get(rest[0])
        if found is None or len(rest) > 1:
            return 404, None
        if method == "GET":
            return 200, {"data": _resource(type_, rest[0], found)}
        if method == "PATCH":
            found.update({k: v for k, v in attributes.items() if k != "shared_secret"}, updated_at=_now())
            return 200, {"data": _resource(type_, rest[0], found)}
        if method == "DELETE":
            del store[rest[0]]
            return 204, None
        return 405, None

    # -- what Jebbit sends ------------------------------------------------------------------

    def _soon(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, kind: str, integration: dict[str, Any], body: bytes, test: bool = False) -> int:
        headers = _signed(integration, body)
        if test:
            headers[TEST_HEADER] = "true"
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                status = (await client.post(integration["endpoint"], content=body, headers=headers)).status_code
        except httpx.HTTPError:
            status = 0  # nothing reached the endpoint
        self.deliveries.append((kind, integration["endpoint"], status))
        return status

    async def _run_backfill(self, backfill: dict[str, Any], integration: dict[str, Any]) -> None:
        await asyncio.sleep(self.backfill_step_seconds)
        backfill.update(status="processing", updated_at=_now())
        failed = False
        for session in list(self.sessions):
            await asyncio.sleep(self.backfill_step_seconds / 4)
            status = await self._post("backfill", integration, msgspec.json.encode([session]))
            failed = failed or not 200 <= status < 300
        await asyncio.sleep(self.backfill_step_seconds)
        backfill.update(status="failed" if failed else "completed", updated_at=_now())


def _signed(integration: dict[str, Any], body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", HEADER: sign(integration["shared_secret"], body)}


def _resource(type_: str, id: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"id": id, "type": type_, "attributes": attributes}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def fake_jebbit() -> Iterator[FakeJebbitAPI]:
    """A started ``FakeJebbitAPI``; stopped after the test."""
    fake = FakeJebbitAPI().start()
    yield fake
    fake.stop()
