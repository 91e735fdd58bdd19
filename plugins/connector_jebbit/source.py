"""The ``jebbit`` source: verifies Jebbit's signature, decodes experiences, one record each."""

from __future__ import annotations

import msgspec

import connector
from connector import HTTPError
from connector.errors import ConfigError

from .schema import Experience, delivery_decoder, experience_decoder
from .signature import HEADER, SignatureError, verify

TEST_HEADER = "x-jebbit-test"


class JebbitSourceConfig(connector.SourceConfig, tag="jebbit"):
    """``type = "jebbit"``.

    ``shared_secret``: the integration's secret, or a list of them while rotating.
    ``tolerance_seconds``: how far the signature time may be from now, either way.
    ``max_attributes``: an experience with more ``data`` fields is refused (400): its Segment
    messages could not stay under 32 KB.
    """

    shared_secret: connector.Secret | list[connector.Secret]
    path: str = "/webhooks/jebbit"
    tolerance_seconds: int = 300
    max_attributes: int = 500

    def build(self, ctx: connector.BuildContext) -> connector.Source:
        secrets = [self.shared_secret] if isinstance(self.shared_secret, str) else self.shared_secret
        if not secrets or not all(secrets):
            raise ConfigError(f"sources.{ctx.name}.shared_secret: must not be empty")
        return JebbitSource(self.path, [s.encode() for s in secrets], self.tolerance_seconds, self.max_attributes)


class JebbitSource(connector.WebhookSource):
    """Accepts signed deliveries of one or many experiences."""

    def __init__(self, path: str, keys: list[bytes], tolerance: int, max_attributes: int = 500):
        self.path = path
        self.keys = keys
        self.tolerance = tolerance
        self.max_attributes = max_attributes

    def accept(self, request: connector.WebhookRequest) -> connector.Accepted:
        try:
            verify(request.headers.get(HEADER), request.body, self.keys, self.tolerance)
        except SignatureError as exc:
            raise HTTPError(401, "unauthorized", str(exc)) from None
        experiences = decode(request.body)
        for index, experience in enumerate(experiences):
            if len(experience.data) > self.max_attributes:
                raise HTTPError(400, "invalid experience", f"experience {index} has {len(experience.data)} data "
                                f"fields; at most {self.max_attributes} (max_attributes) are accepted")
        return connector.Accepted(experiences, forward=TEST_HEADER not in request.headers)


def decode(body: bytes) -> list[Experience]:
    """The experiences of a delivery; ``HTTPError(400)`` naming the field when it has the wrong shape."""
    try:
        delivery = delivery_decoder.decode(body)
        if isinstance(delivery, Experience):
            return [delivery]
        return [item if isinstance(item, Experience) else experience_decoder.decode(item) for item in delivery]
    except msgspec.ValidationError as exc:
        raise HTTPError(400, "invalid experience", str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise HTTPError(400, "malformed JSON", str(exc)) from None
