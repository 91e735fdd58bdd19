"""Segment messages on the wire: stamped with ``messageId`` and ``context.library``, batched.

With Segment's documented limits and regions.
"""

from __future__ import annotations

import datetime
from importlib.metadata import version
from typing import Any

import msgspec

import connector

LIBRARY = {"name": "connector", "version": version("connector")}
REGIONS = {"us": "https://api.segment.io", "eu": "https://events.eu1.segmentapis.com"}
MAX_BATCH_MESSAGES = 2500
MAX_BATCH_BYTES = 500 * 1000
MAX_MESSAGE_BYTES = 32 * 1000
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


# What Segment's Tracking API requires beside a user: a message without it is answered 200 and
# then discarded, so it is dead-lettered before sending instead.
REQUIRED_BY_TYPE = {"identify": None, "track": "event", "page": None, "screen": None, "group": "groupId",
                    "alias": "previousId"}


class NotAMessage(Exception):
    """The payload cannot be a Segment message."""


def encode_message(envelope: connector.Envelope) -> bytes:
    """The message as JSON, with the envelope's deterministic id as ``messageId`` and
    ``context.library``.

    The payload is stamped in place (copying both dicts cost more than encoding them): the
    envelope then holds what was sent. ``NotAMessage`` (the reason names the field) for what
    Segment would accept and discard.
    """
    payload = envelope.payload
    if isinstance(payload, msgspec.Raw):
        payload = envelope.payload = _decoder.decode(payload)
    if not isinstance(payload, dict):
        raise NotAMessage(f"a Segment message must be a JSON object, got {type(payload).__name__}")
    check_message(payload)
    context = payload.get("context")
    if isinstance(context, dict):
        context["library"] = LIBRARY
    else:
        payload["context"] = {"library": LIBRARY}
    payload["messageId"] = envelope.id
    return _encoder.encode(payload)


def check_message(message: dict[str, Any]) -> None:
    """Raise ``NotAMessage`` unless ``message`` has a known ``type``, a user and its type's field."""
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in REQUIRED_BY_TYPE:
        known = ", ".join(REQUIRED_BY_TYPE)
        raise NotAMessage(f"the message has no Segment type (type={kind!r}; expected one of {known}); "
                          "a source wired straight to the segment sink sends raw records: put a mapper between")
    if not _present(message.get("userId")) and not _present(message.get("anonymousId")):
        raise NotAMessage(f"the {kind} message has neither userId nor anonymousId: Segment would discard it")
    field = REQUIRED_BY_TYPE[kind]
    if field is not None and not _present(message.get(field)):
        raise NotAMessage(f"the {kind} message has no {field}: Segment would discard it")


def _present(value: object) -> bool:
    if type(value) is str:  # the usual case, first
        return value != ""
    return value is not None and not isinstance(value, (dict, list, bool))


def batch_body(messages: list[bytes]) -> bytes:
    """``{"batch": [...], "sentAt": now}`` from already-encoded messages, copied once (a batch is
    up to 500 KB)."""
    sent_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    head, tail = b'{"batch":[', b'],"sentAt":"%s"}' % sent_at.encode()
    if not messages:
        return head + tail
    parts = list(messages)
    parts[0] = head + parts[0]
    parts[-1] = parts[-1] + tail
    return b",".join(parts)


BATCH_OVERHEAD = len(batch_body([]))
