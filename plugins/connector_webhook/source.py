"""The generic ``webhook`` source: a JSON body is one record (an array, one record per item).

Authentication, optional: ``bearer_token`` (``Authorization: Bearer <token>``) or ``hmac_secret``
with ``hmac_header`` (hex or base64 HMAC-SHA256 of the raw body, optionally ``sha256=``-prefixed);
either one a list while a secret is rotated (any of them is accepted).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec

import connector
from connector import HTTPError

_decoder = msgspec.json.Decoder()


class WebhookSourceConfig(connector.SourceConfig, tag="webhook"):
    """``type = "webhook"``: ``path``; optional ``bearer_token`` or ``hmac_secret``."""

    path: str
    bearer_token: connector.Secret | list[connector.Secret] | None = None
    hmac_secret: connector.Secret | list[connector.Secret] | None = None
    hmac_header: str = "x-signature"
    split_arrays: bool = True

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        for key in ("bearer_token", "hmac_secret"):
            if getattr(self, key) is not None and not connector.secret_list(getattr(self, key)):
                raise connector.ConfigError(f"sources.{ctx.name}.{key}: is empty (its variables are set to nothing): "
                                            "the source would take deliveries from anyone; set it, or remove the key")
        return GenericWebhook(self)


class GenericWebhook(connector.WebhookSource):
    """Accepts any JSON value; checks the configured credential first."""

    def __init__(self, config: WebhookSourceConfig):
        self.config = config
        self.path = config.path
        self._bearers = [f"Bearer {token}".encode() for token in connector.secret_list(config.bearer_token)]
        self._hmac_keys = [secret.encode() for secret in connector.secret_list(config.hmac_secret)]
        self._hmac_header = config.hmac_header.lower()

    def accept(self, request: connector.WebhookRequest) -> connector.Accepted:
        if self._bearers:
            given = request.headers.get("authorization", "").encode("latin-1")
            if not any([hmac.compare_digest(given, bearer) for bearer in self._bearers]):  # a list: each compared
                raise HTTPError(401, "unauthorized", "missing or wrong bearer token")
        if self._hmac_keys:
            self._verify_hmac(request)
        try:
            value = _decoder.decode(request.body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise HTTPError(400, "malformed JSON", str(exc)) from None
        if isinstance(value, list) and self.config.split_arrays:
            return connector.Accepted(value)
        return connector.Accepted([value])

    def _verify_hmac(self, request: connector.WebhookRequest) -> None:
        given = request.headers.get(self._hmac_header, "").strip()
        if given.startswith("sha256="):
            given = given[len("sha256="):]
        expected = []
        for key in self._hmac_keys:
            digest = hmac.new(key, request.body, hashlib.sha256).digest()
            expected += [digest.hex(), base64.b64encode(digest).decode()]
        if not given or not any([hmac.compare_digest(given.encode(), e.encode()) for e in expected]):
            raise HTTPError(401, "unauthorized", f"missing or wrong signature in {self._hmac_header}")
