"""Jebbit's ``x-jebbit-signature``: ``t=<unix seconds>,v1=<base64 HMAC-SHA256(secret, "<t>.<body>")>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

HEADER = "x-jebbit-signature"


class SignatureError(Exception):
    """Why a signature is refused (never contains the secret)."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value Jebbit would send for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).digest()
    return f"t={t},v1={base64.b64encode(mac).decode()}"


def verify(header: str | None, body: bytes, keys: Sequence[bytes], tolerance: int, now: float | None = None) -> None:
    """Raise ``SignatureError`` unless ``header`` signs ``body`` with one of ``keys`` in time."""
    if not header:
        raise SignatureError(f"missing {HEADER} header")
    timestamp, signatures = _parse(header)
    age = int(time.time() if now is None else now) - timestamp
    if age > tolerance:
        raise SignatureError(f"signature timestamp is {age} s old (tolerance {tolerance} s)")
    if -age > tolerance:
        raise SignatureError(f"signature timestamp is {-age} s in the future (tolerance {tolerance} s)")
    signed = str(timestamp).encode() + b"." + body
    for key in keys:
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        if any(hmac.compare_digest(expected, given) for given in signatures):
            return
    raise SignatureError("signature does not match the body (check shared_secret)")


def _parse(header: str) -> tuple[int, list[bytes]]:
    timestamp: int | None = None
    signatures: list[bytes] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value.strip().encode())
    if timestamp is None or not signatures:
        raise SignatureError(f"malformed {HEADER} header (expected t=<unix seconds>,v1=<base64 signature>)")
    return timestamp, signatures
