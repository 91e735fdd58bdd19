"""A small typed client for Jebbit's Integrations API: a reused client-credentials token, JSON:API.

Credentials come from the environment only (``JEBBIT_CLIENT_ID``, ``JEBBIT_CLIENT_SECRET``,
optional ``JEBBIT_BUSINESS_ID``). The token lasts ``expires_in`` seconds (24 h) and is reused
for that long across commands: it is cached in the user's cache directory (mode 0600), one file
per auth URL and client id. Every failure is a ``CommandError`` with one line naming what to fix;
neither the client secret nor the token ever appears in one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

import connector

if TYPE_CHECKING:  # imported where a command calls out: every command line (``connector run`` too) builds this plugin's
    import httpx

from .resources import (
    Backfill,
    Business,
    ErrorDocument,
    Integration,
    Many,
    Mapping,
    One,
    Resource,
    Token,
    new_resource,
)

DEFAULT_API_URL = "https://api2.jebbit.com"
DEFAULT_AUTH_URL = "https://auth.jebbit.com/oauth/token"
MEDIA_TYPE = "application/vnd.api+json"
TOKEN_MARGIN_SECONDS = 60  # renew a cached token this long before Jebbit says it expires

T = TypeVar("T")


class Credentials(msgspec.Struct, frozen=True):
    """Who calls Jebbit, and where."""

    client_id: str
    client_secret: str
    business_id: str | None = None
    api_url: str = DEFAULT_API_URL
    auth_url: str = DEFAULT_AUTH_URL

    @classmethod
    def from_env(cls, api_url: str | None = None, auth_url: str | None = None) -> Credentials:
        """Credentials from ``JEBBIT_*`` variables; ``api_url``/``auth_url`` win over theirs."""
        missing = [name for name in ("JEBBIT_CLIENT_ID", "JEBBIT_CLIENT_SECRET") if not os.environ.get(name)]
        if missing:
            raise connector.CommandError(
                f"set {' and '.join(missing)} (the Integrations API client Jebbit's Customer Success gives you)")
        return cls(os.environ["JEBBIT_CLIENT_ID"], os.environ["JEBBIT_CLIENT_SECRET"],
                   os.environ.get("JEBBIT_BUSINESS_ID") or None,
                   (api_url or os.environ.get("JEBBIT_API_URL") or DEFAULT_API_URL).rstrip("/"),
                   auth_url or os.environ.get("JEBBIT_AUTH_URL") or DEFAULT_AUTH_URL)


class TokenCache:
    """One client's access token on disk, readable by its owner only."""

    def __init__(self, credentials: Credentials, directory: Path | None = None):
        key = hashlib.sha256(f"{credentials.auth_url}\0{credentials.client_id}".encode()).hexdigest()[:24]
        self.path = (directory or _cache_directory()) / f"jebbit-token-{key}.json"

    def load(self) -> str | None:
        """The cached token while it has more than a minute left, else None."""
        try:
            cached = msgspec.json.decode(self.path.read_bytes())
            if cached["expires_at"] - TOKEN_MARGIN_SECONDS > time.time():
                return str(cached["access_token"])
        except (OSError, msgspec.DecodeError, KeyError, TypeError):
            pass
        return None

    def save(self, token: Token) -> None:
        """Keep ``token`` until it expires (a cache that cannot be written is skipped)."""
        document = msgspec.json.encode({"access_token": token.access_token,
                                        "expires_at": time.time() + token.expires_in})
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".jebbit-token-")  # mode 0600
            with os.fdopen(fd, "wb") as fh:
                fh.write(document)
            os.replace(temporary, self.path)
        except OSError:
            pass

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class JebbitAPI:
    """Jebbit's Integrations API over httpx; each method returns decoded resources."""

    def __init__(self, credentials: Credentials, cache: TokenCache | None = None, timeout: float = 15.0):
        self.credentials = credentials
        self.cache = cache or TokenCache(credentials)
        import httpx

        self.http = httpx.Client(timeout=timeout, headers={"user-agent": "connector"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> JebbitAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resources --------------------------------------------------------------------------

    def business(self) -> Resource[Business]:
        return self._request("GET", "/api/v1/self", One[Business]).data

    def integrations(self) -> list[Resource[Integration]]:
        return self._request("GET", "/api/v1/integrations", Many[Integration]).data

    def integration(self, id: str) -> Resource[Integration]:
        return self._request("GET", f"/api/v1/integrations/{id}", One[Integration], what=f"integration {id}").data

    def create_integration(self, attributes: Integration) -> Resource[Integration]:
        body = new_resource("integrations", attributes)
        return self._request("POST", "/api/v1/integrations", One[Integration], body).data

    def update_integration(self, id: str, attributes: Integration) -> Resource[Integration]:
        body = new_resource("integrations", attributes)
        return self._request("PATCH", f"/api/v1/integrations/{id}", One[Integration], body,
                             what=f"integration {id}").data

    def delete_integration(self, id: str) -> None:
        self._request("DELETE", f"/api/v1/integrations/{id}", None, what=f"integration {id}")

    def send_test(self, id: str) -> None:
        """Ask Jebbit to sign and send its test delivery to the integration's endpoint."""
        self._request("POST", f"/api/v1/integrations/{id}/test", None, b"{}", what=f"integration {id}")

    def backfills(self) -> list[Resource[Backfill]]:
        return self._request("GET", "/api/v1/integration_historic_backfills", Many[Backfill]).data

    def backfill(self, id: str) -> Resource[Backfill]:
        return self._request("GET", f"/api/v1/integration_historic_backfills/{id}", One[Backfill],
                             what=f"backfill {id}").data

    def create_backfill(self, integration_id: str) -> Resource[Backfill]:
        body = new_resource("integration_historic_backfills", Backfill(integration_id=integration_id))
        return self._request("POST", "/api/v1/integration_historic_backfills", One[Backfill], body,
                             what=f"integration {integration_id}").data

    def mappings(self) -> list[Resource[Mapping]]:
        return self._request("GET", "/api/v1/integration_mappings", Many[Mapping]).data

    def create_mapping(self, attributes: Mapping) -> Resource[Mapping]:
        body = new_resource("integration_mappings", attributes)
        return self._request("POST", "/api/v1/integration_mappings", One[Mapping], body).data

    def delete_mapping(self, id: str) -> None:
        self._request("DELETE", f"/api/v1/integration_mappings/{id}", None, what=f"mapping {id}")

    # -- transport --------------------------------------------------------------------------

    def _request(self, method: str, path: str, document: type[T] | None, body: bytes | None = None,
                 what: str | None = None) -> T:
        response = self._send(method, path, body, self._token())
        if response.status_code == 401 and self._token_was_cached:
            self.cache.clear()  # revoked or from another environment: ask for a new one, once
            response = self._send(method, path, body, self._token())
        if response.is_success:
            if document is None:
                return None  # type: ignore[return-value]
            try:
                return msgspec.json.decode(response.content, type=document)
            except msgspec.DecodeError as exc:
                raise connector.CommandError(
                    f"Jebbit answered {method} {path} with a document this client cannot read: {exc}") from None
        raise connector.CommandError(self._explain(method, path, response, what))

    def _send(self, method: str, path: str, body: bytes | None, token: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}", "accept": MEDIA_TYPE}
        if body is not None:
            headers["content-type"] = MEDIA_TYPE
        if self.credentials.business_id:
            headers["x-jebbit-business"] = self.credentials.business_id
        url = self.credentials.api_url + path
        import httpx

        try:
            return self.http.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise connector.CommandError(
                f"cannot reach Jebbit's API at {self.credentials.api_url} ({type(exc).__name__}): "
                "check JEBBIT_API_URL (or --api-url) and the network") from None

    def _token(self) -> str:
        cached = self.cache.load()
        self._token_was_cached = cached is not None
        if cached is not None:
            return cached
        request = {"client_id": self.credentials.client_id, "client_secret": self.credentials.client_secret,
                   "audience": "public-api", "grant_type": "client_credentials"}
        import httpx

        try:
            response = self.http.post(self.credentials.auth_url, json=request)
        except httpx.HTTPError as exc:
            raise connector.CommandError(
                f"cannot reach Jebbit's auth server at {self.credentials.auth_url} ({type(exc).__name__}): "
                "check JEBBIT_AUTH_URL (or --auth-url) and the network") from None
        if response.status_code in (400, 401, 403):
            raise connector.CommandError(
                f"Jebbit refused the client credentials ({response.status_code}{_oauth_reason(response)}): "
                "check JEBBIT_CLIENT_ID and JEBBIT_CLIENT_SECRET")
        if not response.is_success:
            raise connector.CommandError(
                f"Jebbit's auth server answered {response.status_code}: try again later")
        try:
            token = msgspec.json.decode(response.content, type=Token)
        except msgspec.DecodeError:
            raise connector.CommandError(
                f"{self.credentials.auth_url} did not answer with an access token: check JEBBIT_AUTH_URL") from None
        self.cache.save(token)
        return token.access_token

    def _explain(self, method: str, path: str, response: httpx.Response, what: str | None) -> str:
        status = response.status_code
        title = _title(response)
        request = f"{method} {path}"
        if status == 401:
            return (f"Jebbit refused the access token on {request} ({status}{title}): "
                    "check JEBBIT_CLIENT_ID and JEBBIT_CLIENT_SECRET")
        if status == 403:
            scope = "read:integration" if method == "GET" else "write:integration"
            business = " or JEBBIT_BUSINESS_ID names a business it may not act for" \
                if self.credentials.business_id else ""
            return (f"Jebbit forbids {request} ({status}{title}): the API client lacks the {scope} scope"
                    f"{business}; ask Jebbit's Customer Success for it")
        if status == 404:
            subject = what or path
            return f"Jebbit has no {subject} ({status}): `connector jebbit integrations list` shows what exists"
        if status in (400, 422) and "historic_backfills" in path:
            return (f"Jebbit refused the backfill of {what} ({status}{title}): Jebbit backfills active "
                    "integrations only (`connector jebbit integrations update ID --active`)")
        if status < 500:
            return f"Jebbit refused {request} ({status}{title})"
        return f"Jebbit answered {status} to {request}: try again later"


def _title(response: httpx.Response) -> str:
    """``: <title>`` of a JSON:API error answer, when it has one."""
    try:
        errors = msgspec.json.decode(response.content, type=ErrorDocument).errors
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""
    titles = [text for e in errors if (text := e.title or e.detail)]
    return f": {'; '.join(titles)}" if titles else ""


def _oauth_reason(response: Any) -> str:
    """``: <error_description>`` of an OAuth error answer, when it has one."""
    try:
        answer = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return ""
    if not isinstance(answer, dict):
        return ""
    reason = answer.get("error_description") or answer.get("error")
    return f": {reason}" if isinstance(reason, str) and reason else ""


def _cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "connector"
