"""The ``jebbit_to_segment`` mapper: an ``identify`` and a "Survey Completed" ``track`` per experience.

As Jebbit's own Segment source does: ``userId`` is the hex SHA-256 of the trimmed, lowercased
email; both messages carry it in ``context.externalIds``; ``timestamp`` is the experience date.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import connector
from connector import RecordRejected

from .schema import STANDARD_FIELDS, experience_decoder

TRUE_VALUES = frozenset({"true", "yes", "1", "y", "on"})


class JebbitToSegmentConfig(connector.MapperConfig, tag="jebbit_to_segment"):
    """``type = "jebbit_to_segment"``; the ``*_field`` settings name the Jebbit data fields used."""

    event: str = "Survey Completed"
    require_opt_in: bool = False
    hash_pii: bool = False
    email_field: str = "email"
    opt_in_field: str = "opt_in"
    outcome_field: str = "outcome"
    campaign_id_field: str = "campaign_id"
    campaign_name_field: str = "campaign_name"
    session_id_field: str = "session_id"
    channel_field: str = "channel"
    experience_date_field: str = "experience_date"

    def build(self, ctx: connector.BuildContext) -> connector.Mapper:
        return JebbitToSegment(self)


class JebbitToSegment(connector.Mapper):
    """Maps one Jebbit experience record to Segment identify and track messages."""

    def __init__(self, config: JebbitToSegmentConfig):
        self.config = config
        c = config
        self.standard = STANDARD_FIELDS | {
            c.email_field, c.opt_in_field, c.outcome_field, c.campaign_id_field, c.campaign_name_field,
            c.session_id_field, c.channel_field, c.experience_date_field,
        }
        self.survey_fields = (("surveyId", c.campaign_id_field), ("surveySessionId", c.session_id_field),
                              ("surveyTitle", c.campaign_name_field), ("trafficSource", c.channel_field),
                              ("outcome", c.outcome_field))

    def map(self, record: connector.Record) -> list[dict[str, Any]]:
        c = self.config
        data = experience_decoder.decode(record.body).data
        email = data.get(c.email_field)
        if not isinstance(email, str) or not email.strip():
            raise RecordRejected(f"the experience has no {c.email_field}: Segment needs a userId")
        opt_in = data.get(c.opt_in_field)
        if c.require_opt_in and str(opt_in).strip().lower() not in TRUE_VALUES:
            return []
        user_id = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        attributes = {k: v for k, v in data.items() if k not in self.standard}
        common: dict[str, Any] = {
            "context": {"externalIds": [{"collection": "users", "encoding": "none", "id": user_id,
                                         "type": "emailSha256Hash"}]},
            "userId": user_id,
        }
        timestamp = _timestamp(data.get(c.experience_date_field), c.experience_date_field)
        if timestamp is not None:
            common["timestamp"] = timestamp

        traits: dict[str, Any] = {} if c.hash_pii else {"email": email.strip()}
        traits["emailSha256Hash"] = user_id
        for trait, field in (("opt_in", c.opt_in_field), ("outcome", c.outcome_field)):
            if data.get(field) is not None:
                traits[trait] = data[field]
        traits.update(attributes)

        properties: dict[str, Any] = {"questions": attributes}
        for prop, field in self.survey_fields:
            if data.get(field) is not None:
                properties[prop] = data[field]
        identify = {**common, "type": "identify", "traits": traits}
        track = {**common, "type": "track", "event": c.event, "properties": properties}
        return [identify, track]


def _timestamp(value: Any, field: str) -> str | None:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) as ISO 8601 with milliseconds and ``Z``."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise RecordRejected(f"{field} {value!r} is not a date (expected YYYY-MM-DD HH:MM:SS, UTC)") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"
