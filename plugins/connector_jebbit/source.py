"""The ``jebbit`` source: verifies Jebbit's signature, then stores each item of the delivery whole.

A valid signature and valid JSON always get 200: an item the mapper cannot read is stored and
dead-lettered there with the reason, never costing its siblings a 400.
"""

from __future__ import annotations

import msgspec

import connector
from connector import ConfigError, HTTPError

from .schema import delivery_items
from .signature import HEADER, TEST_HEADER, SignatureError, Verifier


class JebbitSourceConfig(connector.SourceConfig, tag="jebbit"):
    """``type = "jebbit"``.

    ``shared_secret``: the integration's secret, or a list of them while rotating.
    ``tolerance_seconds``: how far the signature time may be from now, either way.
    """

    shared_secret: connector.Secret | list[connector.Secret]
    path: str = "/webhooks/jebbit"
    tolerance_seconds: int = 300

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        secrets = connector.secret_list(self.shared_secret)
        if not secrets:
            raise ConfigError(f"sources.{ctx.name}.shared_secret: must not be empty")
        return JebbitSource(self.path, [s.encode() for s in secrets], self.tolerance_seconds)


class JebbitSource(connector.WebhookSource):
    """Accepts signed deliveries of one or many experiences."""

    def __init__(self, path: str, keys: list[bytes], tolerance: int):
        self.path = path
        self.verifier = Verifier(keys, tolerance)

    def accept(self, request: connector.WebhookRequest) -> connector.Accepted:
        try:
            self.verifier.verify(request.headers.get(HEADER), request.body)
        except SignatureError as exc:
            raise HTTPError(401, "unauthorized", str(exc)) from None
        try:
            items = delivery_items(request.body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise HTTPError(400, "malformed JSON", str(exc)) from None
        return connector.Accepted(items, forward=TEST_HEADER not in request.headers)
