"""The ``typeform`` source: verifies ``Typeform-Signature``, then stores each event whole.

Typeform signs the raw body: ``Typeform-Signature: sha256=<base64 of HMAC-SHA256(secret, body)>``
("Secure your webhooks", Typeform's developer docs). While a secret is rotated, ``secret`` takes
a list: a signature by any of them is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec

import connector

HEADER = "typeform-signature"
_decode = msgspec.json.Decoder().decode


def signature(secret: str, body: bytes) -> str:
    """The ``Typeform-Signature`` value Typeform sends for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


class TypeformSourceConfig(connector.SourceConfig, tag="typeform"):
    """``type = "typeform"``: ``secret`` as set on the form's webhook (a list while rotating), ``path``."""

    secret: connector.Secret | list[connector.Secret]
    path: str = "/webhooks/typeform"

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        secrets = [self.secret] if isinstance(self.secret, str) else self.secret
        if not secrets or not all(secrets):
            raise connector.ConfigError(f"sources.{ctx.name}.secret: must not be empty")
        return TypeformSource(self.path, secrets)


class TypeformSource(connector.WebhookSource):
    """One webhook event a delivery; refused (401) unless one of the secrets signed it."""

    def __init__(self, path: str, secrets: list[str]):
        self.path = path
        self.secrets = secrets

    def accept(self, request: connector.WebhookRequest) -> connector.Accepted:
        given = request.headers.get(HEADER, "").strip().encode("latin-1")
        if not given.startswith(b"sha256=") or not any(
                hmac.compare_digest(given, signature(secret, request.body).encode()) for secret in self.secrets):
            raise connector.HTTPError(401, "unauthorized", f"missing or wrong {HEADER} (check secret)")
        try:
            event = _decode(request.body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise connector.HTTPError(400, "malformed JSON", str(exc)) from None
        return connector.Accepted([event])
