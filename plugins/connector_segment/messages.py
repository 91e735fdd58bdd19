"""Segment messages on the wire: stamped with ``messageId`` and ``context.library``, batched."""

from __future__ import annotations

import datetime
from importlib.metadata import version

import msgspec

import connector

LIBRARY = {"name": "connector", "version": version("connector")}
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class NotAMessage(Exception):
    """The payload cannot be a Segment message."""


def encode_message(envelope: connector.Envelope) -> bytes:
    """The message as JSON, with the envelope's deterministic id as ``messageId``."""
    payload = envelope.payload
    if isinstance(payload, msgspec.Raw):
        payload = _decoder.decode(payload)
    if not isinstance(payload, dict):
        raise NotAMessage(f"a Segment message must be a JSON object, got {type(payload).__name__}")
    context = payload.get("context")
    message = dict(payload)
    message["context"] = {**context, "library": LIBRARY} if isinstance(context, dict) else {"library": LIBRARY}
    message["messageId"] = envelope.id
    return _encoder.encode(message)


def batch_body(messages: list[bytes]) -> bytes:
    """``{"batch": [...], "sentAt": now}`` from already-encoded messages."""
    sent_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return b'{"batch":[' + b",".join(messages) + b'],"sentAt":"' + sent_at.encode() + b'"}'


BATCH_OVERHEAD = len(batch_body([]))
