"""Signature checks of the generic ``webhook`` source, each against a list of secrets (rotation).

- ``HmacSignature``: an HMAC (``sha256``, ``sha1`` or ``sha512``) of the raw body in one header,
  hex or base64, optionally after a prefix (``sha256=``, as GitHub and Typeform send it);
- ``StandardWebhooksSignature``: the Standard Webhooks spec (standardwebhooks.com):
  ``webhook-signature`` holds space-separated ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
  with the ``whsec_<base64>`` secret's key; ``webhook-timestamp`` within ``tolerance_seconds``.

Every compare is in constant time; a failure is ``HTTPError(401)`` with the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence

from connector import HTTPError, WebhookRequest

ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}


def _refused(detail: str) -> HTTPError:
    return HTTPError(401, "unauthorized", detail)


def _any_equal(given: bytes, expected: Sequence[bytes]) -> bool:
    return any([hmac.compare_digest(given, candidate) for candidate in expected])  # a list: every one compared


class HmacSignature:
    """An HMAC of the body in ``header``; ``encoding`` hex, base64, or None for either."""

    def __init__(self, secrets: Sequence[str], header: str, algorithm: str, encoding: str | None, prefix: str):
        self.keys = [secret.encode() for secret in secrets]
        self.header = header.lower()
        self.digest = ALGORITHMS[algorithm]
        self.encodings = [encoding] if encoding else ["hex", "base64"]
        self.prefix = prefix or f"{algorithm}="  # unset: the algorithm's usual prefix, when it is there

    def verify(self, request: WebhookRequest) -> None:
        given = request.headers.get(self.header, "").strip()
        if not given:
            raise _refused(f"missing signature header {self.header}")
        if given.startswith(self.prefix):
            given = given[len(self.prefix):]
        expected = []
        for key in self.keys:
            mac = hmac.new(key, request.body, self.digest).digest()
            expected += [mac.hex().encode() if e == "hex" else base64.b64encode(mac) for e in self.encodings]
        if not _any_equal(given.encode(), expected):
            raise _refused(f"wrong signature in {self.header} (check hmac_secret, hmac_algorithm, hmac_encoding)")


class StandardWebhooksSignature:
    """The Standard Webhooks scheme with ``whsec_`` secrets and a timestamp tolerance."""

    def __init__(self, secrets: Sequence[str], tolerance_seconds: float):
        self.keys = [_whsec_key(secret) for secret in secrets]
        self.tolerance = tolerance_seconds

    def verify(self, request: WebhookRequest) -> None:
        headers = request.headers
        message_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not message_id or not timestamp or not signatures:
            raise _refused("missing webhook-id, webhook-timestamp or webhook-signature header")
        try:
            sent = int(timestamp)
        except ValueError:
            raise _refused(f"webhook-timestamp {timestamp[:20]!r} is not Unix seconds") from None
        if abs(time.time() - sent) > self.tolerance:
            raise _refused(f"webhook-timestamp is more than {self.tolerance:g} s from now (a replay, or a clock off)")
        content = f"{message_id}.{timestamp}.".encode() + request.body
        expected = [base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()) for key in self.keys]
        given = [part.split(",", 1)[1].encode() for part in signatures.split() if part.startswith("v1,")]
        if not any(_any_equal(signature, expected) for signature in given):
            raise _refused("no v1 signature in webhook-signature matches (check hmac_secret)")


def _whsec_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("a Standard Webhooks secret is whsec_ and base64") from None
