"""Jebbit's ``x-jebbit-signature``: ``t=<unix seconds>,v1=<base64 HMAC-SHA256(secret, "<t>.<body>")>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Sequence

HEADER = "x-jebbit-signature"
TEST_HEADER = "x-jebbit-test"  # Jebbit's test delivery, signed like any other: acknowledged, not stored
_PLAIN = re.compile(r"t=([0-9]+),v1=([^,\s]+)")


class SignatureError(Exception):
    """Why a signature is refused (never contains the secret)."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value Jebbit would send for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).digest()
    return f"t={t},v1={base64.b64encode(mac).decode()}"


class Verifier:
    """Checks signatures made with any of ``keys`` (several while a secret is rotated), in time."""

    def __init__(self, keys: Sequence[bytes], tolerance: int):
        self.macs = [hmac.new(key, digestmod=hashlib.sha256) for key in keys]  # keyed once, copied per body
        self.tolerance = tolerance

    def verify(self, header: str | None, body: bytes, now: float | None = None) -> None:
        """Raise ``SignatureError`` unless ``header`` signs ``body`` in time."""
        if not header:
            raise SignatureError(f"missing {HEADER} header")
        timestamp, signatures = _parse(header)
        age = int(time.time() if now is None else now) - timestamp
        if age > self.tolerance:
            raise SignatureError(f"signature timestamp is {age} s old (tolerance {self.tolerance} s)")
        if -age > self.tolerance:
            raise SignatureError(f"signature timestamp is {-age} s in the future (tolerance {self.tolerance} s)")
        signed = b"%d.%s" % (timestamp, body)
        for mac in self.macs:
            keyed = mac.copy()
            keyed.update(signed)
            expected = base64.b64encode(keyed.digest())
            for given in signatures:
                if hmac.compare_digest(expected, given):
                    return
        raise SignatureError("signature does not match the body (check shared_secret)")


def _parse(header: str) -> tuple[int, list[bytes]]:
    plain = _PLAIN.fullmatch(header)  # "t=<digits>,v1=<signature>", as Jebbit sends it
    if plain is not None:
        return int(plain[1]), [plain[2].encode()]
    timestamp: int | None = None
    signatures: list[bytes] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value.strip().encode())
    if timestamp is None or not signatures:
        raise SignatureError(f"malformed {HEADER} header (expected t=<unix seconds>,v1=<base64 signature>)")
    return timestamp, signatures
