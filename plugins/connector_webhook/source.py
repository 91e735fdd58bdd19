"""The generic ``webhook`` source: a JSON body is one record (an array, one record per item).

Authentication, optional: ``bearer_token`` (``Authorization: Bearer <token>``), or a signature
with ``hmac_secret``: an HMAC of the raw body in ``hmac_header`` (``hmac_algorithm`` sha256, sha1
or sha512; ``hmac_encoding`` hex or base64, either when unset; after ``hmac_prefix``, by default
the algorithm's ``sha256=``-style prefix when present), or ``scheme = "standard-webhooks"``
(``whsec_`` secrets, ``tolerance_seconds``). A secret may be a list while it is rotated.
"""

from __future__ import annotations

import hmac
from typing import Literal

import msgspec

import connector
from connector import HTTPError

from .signatures import HmacSignature, StandardWebhooksSignature

_decoder = msgspec.json.Decoder()


class WebhookSourceConfig(connector.SourceConfig, tag="webhook"):
    """``type = "webhook"``: ``path``; optional ``bearer_token``, or ``hmac_secret`` with the
    signature's settings."""

    path: str
    bearer_token: connector.Secret | list[connector.Secret] | None = None
    hmac_secret: connector.Secret | list[connector.Secret] | None = None
    hmac_header: str = "x-signature"
    hmac_algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    hmac_encoding: Literal["hex", "base64"] | None = None
    hmac_prefix: str = ""
    scheme: Literal["hmac", "standard-webhooks"] = "hmac"
    tolerance_seconds: float = 300.0
    split_arrays: bool = True

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        for key in ("bearer_token", "hmac_secret"):
            if getattr(self, key) is not None and not connector.secret_list(getattr(self, key)):
                raise connector.ConfigError(f"sources.{ctx.name}.{key}: is empty (its variables are set to nothing): "
                                            "the source would take deliveries from anyone; set it, or remove the key")
        secrets = connector.secret_list(self.hmac_secret)
        if self.scheme == "standard-webhooks" and not secrets:
            raise connector.ConfigError(f"sources.{ctx.name}.hmac_secret: scheme standard-webhooks needs the whsec_ "
                                        "secret(s)")
        signature: HmacSignature | StandardWebhooksSignature | None = None
        try:
            if self.scheme == "standard-webhooks":
                signature = StandardWebhooksSignature(secrets, self.tolerance_seconds)
            elif secrets:
                signature = HmacSignature(secrets, self.hmac_header, self.hmac_algorithm, self.hmac_encoding,
                                          self.hmac_prefix)
        except ValueError as exc:
            raise connector.ConfigError(f"sources.{ctx.name}.hmac_secret: {exc}") from None
        return GenericWebhook(self, signature)


class GenericWebhook(connector.WebhookSource):
    """Accepts any JSON value; checks the configured credential first."""

    def __init__(self, config: WebhookSourceConfig, signature: HmacSignature | StandardWebhooksSignature | None):
        self.config = config
        self.path = config.path
        self._bearers = [f"Bearer {token}".encode() for token in connector.secret_list(config.bearer_token)]
        self._signature = signature

    def accept(self, request: connector.WebhookRequest) -> connector.Accepted:
        if self._bearers:
            given = request.headers.get("authorization", "").encode("latin-1")
            if not any([hmac.compare_digest(given, bearer) for bearer in self._bearers]):  # a list: each compared
                raise HTTPError(401, "unauthorized", "missing or wrong bearer token")
        if self._signature is not None:
            self._signature.verify(request)
        try:
            value = _decoder.decode(request.body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise HTTPError(400, "malformed JSON", str(exc)) from None
        if isinstance(value, list) and self.config.split_arrays:
            return connector.Accepted(value)
        return connector.Accepted([value])
