"""Jebbit's webhook payload: a JSON array of experiences (or one), each ``{"data": {...}, "event": {...}}``.

An item may arrive as a JSON string holding the experience (Jebbit's test delivery does this).
Items are stored whole, with every key Jebbit sends (``uids`` when the integration includes
them); the mapper reads them through ``Experience``.
"""

from __future__ import annotations

from typing import Any

import msgspec

STANDARD_FIELDS = frozenset({
    "email", "opt_in", "outcome", "url_param", "campaign_name", "campaign_id", "session_id",
    "channel", "experience_date", "client_user_id",
})


class Experience(msgspec.Struct, frozen=True, gc=False):
    """One completed experience: ``data`` holds the standard fields and the mapped attributes
    (any JSON value); other keys (``event``, ``uids``) are kept in the stored record and skipped
    here without being built."""

    data: dict[str, Any]


body_decoder = msgspec.json.Decoder()
experience_decoder = msgspec.json.Decoder(Experience)


def delivery_items(body: bytes) -> list[Any]:
    """The items of a delivery, each as it will be stored: a JSON string that holds a JSON object
    is that object; anything else is kept as sent, for the mapper to dead-letter with the reason.

    Raises ``msgspec.DecodeError`` (or ``UnicodeDecodeError``) when the body is not JSON.
    """
    value = body_decoder.decode(body)
    items = value if isinstance(value, list) else [value]
    return [_unwrap(item) for item in items]


def _unwrap(item: Any) -> Any:
    if isinstance(item, str) and item.lstrip().startswith("{"):
        try:
            return body_decoder.decode(item)
        except msgspec.DecodeError:
            return item
    return item
