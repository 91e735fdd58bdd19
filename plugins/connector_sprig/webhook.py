"""The ``sprig`` source: Sprig's webhooks, authenticated with ``Authorization: Bearer <api secret>``.

Every authenticated delivery of valid JSON is stored whole (an array: one record per item),
whatever its event type: the mapper decides what it becomes, so enabling a new event in Sprig
never loses it silently. A ``TEST`` event (Sprig's "Test Webhook" button) is acknowledged and
not stored.
"""

from __future__ import annotations

import hmac

import msgspec

import connector
from connector import HTTPError

from .schema import body_decoder, is_test


class SprigWebhookConfig(connector.SourceConfig, tag="sprig"):
    """``type = "sprig"``: ``api_secret`` as set in Sprig's webhook destination (a list while
    rotating)."""

    api_secret: connector.Secret | list[connector.Secret]
    path: str = "/webhooks/sprig"

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        secrets = connector.secret_list(self.api_secret)
        if not secrets:
            raise connector.ConfigError(f"sources.{ctx.name}.api_secret: must not be empty")
        return SprigWebhook(self.path, [f"Bearer {s}".encode() for s in secrets])


class SprigWebhook(connector.WebhookSource):
    """Checks the bearer secret in constant time and stores each event as sent."""

    def __init__(self, path: str, tokens: list[bytes]):
        self.path = path
        self.tokens = tokens

    def accept(self, request: connector.WebhookRequest) -> connector.Accepted:
        given = request.headers.get("authorization", "").encode("latin-1")
        # compare with every token, always, so the time taken says nothing about which matched
        if not given or not sum(hmac.compare_digest(given, token) for token in self.tokens):
            raise HTTPError(401, "unauthorized", "missing or wrong bearer token (check api_secret)")
        try:
            value = body_decoder.decode(request.body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise HTTPError(400, "malformed JSON", str(exc)) from None
        events = value if isinstance(value, list) else [value]
        kept = [event for event in events if not is_test(event)]
        if events and not kept:
            return connector.Accepted(events, forward=False)
        return connector.Accepted(kept)
