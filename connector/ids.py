"""Deterministic ids: the same record content always gets the same record and message ids."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

MAX_ID_LENGTH = 100
_encoder = msgspec.json.Encoder(order="sorted")


def canonical(value: Any) -> bytes:
    """Encode a decoded record canonically: sorted keys, no insignificant whitespace."""
    return _encoder.encode(value)


def record_id(source: str, body: bytes) -> str:
    """``<source>-<128-bit hash of the canonical body>``, at most 100 characters."""
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    return _bounded(f"{source}-{digest}")


def message_id(record: str, route: str, index: int) -> str:
    """The id of output ``index`` of ``record`` through ``route`` (a mapper name, or the source)."""
    return _bounded(f"{record}-{route}-{index}")


def _bounded(value: str) -> str:
    if len(value) <= MAX_ID_LENGTH:
        return value
    return hashlib.blake2b(value.encode(), digest_size=32).hexdigest()
