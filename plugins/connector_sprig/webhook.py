"""The ``sprig`` source: Sprig's webhooks, authenticated with ``Authorization: Bearer <api secret>``.

Answer-submitted and study-submitted events are forwarded; other event types are acknowledged
and counted, and forwarded only when the ``events`` setting lists them; a ``TEST`` event
(Sprig's "Test Webhook" button) is acknowledged and not forwarded.
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec

import connector
from connector import HTTPError, metrics

from .schema import ANSWER_SUBMITTED, STUDY_SUBMITTED, TEST, SprigEvent, body_decoder, event_kind, normalize


class SprigWebhookConfig(connector.SourceConfig, tag="sprig"):
    """``type = "sprig"``: ``api_secret`` as set in Sprig's webhook destination; ``events`` adds
    event types to forward beside answer submitted and study submitted."""

    api_secret: connector.Secret | list[connector.Secret]
    path: str = "/webhooks/sprig"
    events: list[str] = []

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        secrets = [self.api_secret] if isinstance(self.api_secret, str) else self.api_secret
        forwarded = {ANSWER_SUBMITTED, STUDY_SUBMITTED, *(normalize(e) for e in self.events)}
        return SprigWebhook(self.path, [f"Bearer {s}".encode() for s in secrets if s], forwarded, ctx.log)


class SprigWebhook(connector.WebhookSource):
    """Checks the bearer secret in constant time, decodes one event (or an array of them)."""

    def __init__(self, path: str, tokens: list[bytes], forwarded: set[str], log: Any):
        self.path = path
        self.tokens = tokens
        self.forwarded = forwarded
        self.log = log

    def accept(self, request: connector.WebhookRequest) -> connector.Accepted:
        given = request.headers.get("authorization", "").encode("latin-1")
        # compare with every token, always, so the time taken says nothing about which matched
        if not given or not sum(hmac.compare_digest(given, token) for token in self.tokens):
            raise HTTPError(401, "unauthorized", "missing or wrong bearer token (check api_secret)")
        events = decode(request.body)
        kinds = [event_kind(checked) for _, checked in events]
        if kinds and all(kind == TEST for kind in kinds):
            return connector.Accepted([raw for raw, _ in events], forward=False)
        kept = [raw for (raw, _), kind in zip(events, kinds) if kind in self.forwarded]
        skipped = len(events) - len(kept)
        if skipped:
            metrics.ERRORS.labels(self.name, "event_type_not_forwarded").inc(skipped)
            self.log.debug("events acknowledged, not forwarded", count=skipped)
        return connector.Accepted(kept)


def decode(body: bytes) -> list[tuple[dict[str, Any], SprigEvent]]:
    """Each event as sent (every field kept) and type-checked; ``HTTPError(400)`` naming the field."""
    try:
        value = body_decoder.decode(body)
        events = value if isinstance(value, list) else [value]
        return [(event, msgspec.convert(event, SprigEvent)) for event in events]
    except msgspec.ValidationError as exc:
        raise HTTPError(400, "invalid Sprig event", str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise HTTPError(400, "malformed JSON", str(exc)) from None
