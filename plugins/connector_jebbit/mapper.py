"""The ``jebbit_to_segment`` mapper: an ``identify`` and a "Survey Completed" ``track`` per experience.

As Jebbit's own Segment source does: ``userId`` is the hex SHA-256 of the trimmed, lowercased
email (or the email as it came when Jebbit's ``hash_pii`` already sent its SHA-256); both
messages carry it in ``context.externalIds``; ``timestamp`` is the experience date.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from typing import Any

import msgspec

import connector
from connector import RecordRejected

from .schema import STANDARD_FIELDS, experience_decoder

TRUE_VALUES = frozenset({"true", "yes", "1", "y", "on"})
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class JebbitToSegmentConfig(connector.MapperConfig, tag="jebbit_to_segment"):
    """``type = "jebbit_to_segment"``; the ``*_field`` settings name the Jebbit data fields used.

    ``require_opt_in``: drop (and count) experiences whose opt-in is not true. ``hash_pii``:
    leave the plain email out of traits. ``experience_date_format``: a ``strptime`` format for
    dates that are neither ``YYYY-MM-DD HH:MM:SS`` nor ISO 8601 (taken as UTC unless it has
    ``%z``).
    """

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
    client_user_id_field: str = "client_user_id"
    url_param_field: str = "url_param"
    experience_date_field: str = "experience_date"
    experience_date_format: str | None = None

    def build(self, ctx: connector.BuildContext) -> connector.Mapper:
        return JebbitToSegment(self)


class JebbitToSegment(connector.Mapper):
    """Maps one Jebbit experience record to Segment identify and track messages."""

    def __init__(self, config: JebbitToSegmentConfig):
        self.config = config
        c = config
        self.standard = STANDARD_FIELDS | {
            c.email_field, c.opt_in_field, c.outcome_field, c.campaign_id_field, c.campaign_name_field,
            c.session_id_field, c.channel_field, c.client_user_id_field, c.url_param_field,
            c.experience_date_field,
        }
        self.survey_fields = (("surveyId", c.campaign_id_field), ("surveySessionId", c.session_id_field),
                              ("surveyTitle", c.campaign_name_field), ("trafficSource", c.channel_field),
                              ("outcome", c.outcome_field), ("client_user_id", c.client_user_id_field),
                              ("url_param", c.url_param_field))

    def map(self, record: connector.Record) -> list[dict[str, Any]]:
        c = self.config
        try:
            data = experience_decoder.decode(record.body).data
        except msgspec.ValidationError as exc:
            raise RecordRejected(f"not a Jebbit experience (expected {{\"data\": {{...}}, \"event\": ...}}): {exc}") from None
        email = data.get(c.email_field)
        if not isinstance(email, str) or not email.strip():
            raise RecordRejected(f"the experience has no {c.email_field}: Segment needs a userId")
        if c.require_opt_in and str(data.get(c.opt_in_field)).strip().lower() not in TRUE_VALUES:
            return []
        email = email.strip()
        hashed = len(email) == 64 and SHA256_HEX.fullmatch(email) is not None  # hash_pii: the email is its hash
        user_id = email.lower() if hashed else hashlib.sha256(email.lower().encode()).hexdigest()
        standard = self.standard
        attributes = {k: v for k, v in data.items() if k not in standard}
        context = {"externalIds": [{"collection": "users", "encoding": "none", "id": user_id,
                                    "type": "emailSha256Hash"}]}
        traits: dict[str, Any] = {} if c.hash_pii or hashed else {"email": email}
        if (opt_in := data.get(c.opt_in_field)) is not None:
            traits["opt_in"] = opt_in
        if (outcome := data.get(c.outcome_field)) is not None:
            traits["outcome"] = outcome
        traits.update(attributes)
        traits["emailSha256Hash"] = user_id  # computed: a mapped attribute of that name never wins
        properties: dict[str, Any] = {"questions": attributes}
        for prop, field in self.survey_fields:
            if (value := data.get(field)) is not None:
                properties[prop] = value
        identify = {"context": context, "userId": user_id, "type": "identify", "traits": traits}
        track = {"context": context, "userId": user_id, "type": "track", "event": c.event, "properties": properties}
        timestamp = self._timestamp(data.get(c.experience_date_field))
        if timestamp is not None:
            identify["timestamp"] = track["timestamp"] = timestamp
        return [identify, track]

    def _timestamp(self, value: Any) -> str | None:
        """The experience date as ISO 8601 UTC with milliseconds and ``Z``; None when absent."""
        if value is None or value == "":
            return None
        c = self.config
        if (c.experience_date_format is None and type(value) is str and len(value) == 19 and value[10] in " T"
                and value[4] == value[7] == "-" and value[13] == value[16] == ":"):  # Jebbit's own format (UTC)
            try:
                datetime.datetime.fromisoformat(value)  # digits, and a real date and time
            except ValueError:
                pass  # the general path says why
            else:
                return f"{value[:10]}T{value[11:]}.000Z"
        text = str(value).strip()
        moment = None
        if c.experience_date_format is not None:
            try:
                moment = datetime.datetime.strptime(text, c.experience_date_format)
            except ValueError:
                pass
        if moment is None:
            try:
                moment = datetime.datetime.fromisoformat(text)
            except ValueError:
                setting = (f"experience_date_format {c.experience_date_format!r} does not read it either"
                           if c.experience_date_format is not None else
                           "set experience_date_format (strptime, e.g. \"%m/%d/%Y %H:%M\") to read it")
                raise RecordRejected(f"{c.experience_date_field} {value!r} is not a date: expected "
                                     f"YYYY-MM-DD HH:MM:SS (UTC) or ISO 8601; {setting}") from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
        return moment.isoformat(timespec="milliseconds") + "Z"
