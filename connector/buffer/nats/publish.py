"""Publishes to JetStream, an append's records together, answered within a deadline.

JetStream acknowledges a message published with a reply subject by a ``PubAck`` on that subject
(``{"stream", "seq", "duplicate"}``, or ``{"error": {"code", "err_code", "description"}}``; a
503 status if no stream takes the subject). nats-py's ``publish_async`` makes a future, a random
token, a semaphore wait and a done-callback a message, and never expires; here one future serves
an append's messages, tokens count up, and one timer handle bounds the whole append.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from typing import Any

from ...errors import BufferFull, BufferUnavailable

NO_RESPONDERS = "503"
STREAM_FULL = 10054  # the err_code, beside the "maximum bytes" of a stream at its max_bytes


class _Append:
    """One append's messages waiting for their acks."""

    __slots__ = ("future", "tokens", "owed")

    def __init__(self, future: asyncio.Future[None], tokens: list[str]):
        self.future = future
        self.tokens = tokens
        self.owed = len(tokens)


class AckedPublisher:
    """Publishes messages and awaits JetStream's acks for all of them, or fails within a deadline."""

    def __init__(self, nc: Any):
        self._nc = nc
        self._prefix = nc.new_inbox() + "."
        self._waiting: dict[str, _Append] = {}
        self._tokens = itertools.count()

    async def start(self) -> None:
        await self._nc.subscribe(self._prefix + "*", cb=self._on_ack)

    async def publish(self, messages: Sequence[tuple[str, bytes, dict[str, str]]], timeout: float) -> None:
        """Publish ``(subject, body, headers)`` each; return once every one is acknowledged.

        Raises ``TimeoutError`` after ``timeout`` seconds (a late ack is harmless: the record id
        deduplicates), ``BufferFull`` or ``BufferUnavailable`` when JetStream refuses one."""
        loop = asyncio.get_running_loop()
        tokens = [str(next(self._tokens)) for _ in messages]
        pending = _Append(loop.create_future(), tokens)
        for token in tokens:
            self._waiting[token] = pending
        timer = loop.call_later(timeout, _expire, pending)
        try:
            prefix, publish = self._prefix, self._nc.publish
            for token, (subject, body, headers) in zip(tokens, messages):
                await publish(subject, body, reply=prefix + token, headers=headers)
            await pending.future
        finally:
            timer.cancel()
            for token in tokens:
                self._waiting.pop(token, None)

    async def _on_ack(self, msg: Any) -> None:
        pending = self._waiting.pop(msg.subject[len(self._prefix):], None)
        if pending is None or pending.future.done():
            return
        if msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
            pending.future.set_exception(BufferUnavailable("no nats stream took the records (no responders)"))
            return
        if b'"error"' in msg.data:
            pending.future.set_exception(_refusal(json.loads(msg.data).get("error") or {}))
            return
        pending.owed -= 1
        if pending.owed == 0:
            pending.future.set_result(None)


def _expire(pending: _Append) -> None:
    if not pending.future.done():
        pending.future.set_exception(TimeoutError())


def _refusal(error: dict[str, Any]) -> Exception:
    description = str(error.get("description", "")) or "no description"
    if "maximum bytes" in description.lower() or error.get("err_code") == STREAM_FULL:
        return BufferFull("the nats stream holds its limit of bytes")
    return BufferUnavailable(f"nats refused the records: {description} (err_code {error.get('err_code')})")
