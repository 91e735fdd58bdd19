"""Jebbit's webhook payload as msgspec Structs: an array of experiences (or a single one)."""

from __future__ import annotations

from typing import Any

import msgspec

AttributeValue = str | int | float | bool | list[str] | None

STANDARD_FIELDS = frozenset({
    "email", "opt_in", "outcome", "url_param", "campaign_name", "campaign_id", "session_id",
    "channel", "experience_date", "client_user_id",
})


class Experience(msgspec.Struct, frozen=True):
    """One completed experience: ``data`` holds the standard fields and the mapped attributes."""

    data: dict[str, AttributeValue]
    event: dict[str, Any] = {}


# Jebbit's test delivery shows each experience as a JSON string inside the array: accept both.
Delivery = list[Experience | str] | Experience

delivery_decoder = msgspec.json.Decoder(Delivery)
experience_decoder = msgspec.json.Decoder(Experience)
