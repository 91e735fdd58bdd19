"""The ASGI types the ingress speaks, and the one way its apps write a whole JSON answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]  # status, headers (with content-length), body: what the server writes

json = msgspec.json.Encoder()
_JSON_HEADERS = ((b"content-type", b"application/json"),)
_PLAIN_HEADERS: dict[int, tuple[tuple[bytes, bytes], ...]] = {}


def error_body(error: str, detail: str) -> bytes:
    """The JSON body of every refusal: ``{"error": ..., "detail": ...}``."""
    return json.encode({"error": error, "detail": detail})


def raw_headers(length: int, headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    """``headers`` as ASGI wants them, JSON unless they say otherwise, with the Content-Length
    (which spares the server a chunked encoding). A tuple: the server renders it once."""
    if not headers:
        plain = _PLAIN_HEADERS.get(length)
        if plain is None:
            plain = (*_JSON_HEADERS, (b"content-length", b"%d" % length))
            if len(_PLAIN_HEADERS) < 1024:
                _PLAIN_HEADERS[length] = plain
        return plain
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if "content-type" not in headers:
        raw += _JSON_HEADERS
    raw.append((b"content-length", b"%d" % length))
    return tuple(raw)


async def respond(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    """One complete response (JSON unless ``headers`` name another content-type)."""
    await send({"type": "http.response.start", "status": status, "headers": raw_headers(len(body), headers or {})})
    await send({"type": "http.response.body", "body": body})
