"""Publishes to JetStream, an append's records together, answered within a deadline.

JetStream acknowledges a message published with a reply subject by a ``PubAck`` on that subject
(``{"stream", "seq", "duplicate"}``, or ``{"error": {"code", "err_code", "description"}}``; a
503 status if no stream takes the subject). nats-py's ``publish_async`` makes a future, a random
token, a semaphore wait and a done-callback a message, and never expires. Here the appends that
arrive in one turn of the event loop are published by one task, each append's ``done`` is called
from the ack that completes it (no task a request, as the sqlite buffer's commit does), tokens
count up, and one timer bounds the turn's appends.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import BufferFull, BufferUnavailable
from ...logging import logger

Message = tuple[str, bytes, dict[str, str]]  # subject, body, headers
Done = Callable[[BaseException | None], None]
NO_RESPONDERS = "503"
STREAM_FULL = 10054  # the err_code, beside the "maximum bytes" of a stream at its max_bytes


class _Append:
    """One append's messages waiting for their acks."""

    __slots__ = ("done", "tokens", "owed")

    def __init__(self, tokens: list[str], done: Done):
        self.done: Done | None = done
        self.tokens = tokens
        self.owed = len(tokens)


class AckedPublisher:
    """Publishes messages and calls back once JetStream acknowledged all of an append's, or not
    within ``timeout`` seconds (``TimeoutError``; a late ack is harmless: the record id
    deduplicates), or refused one (``BufferFull``, ``BufferUnavailable``)."""

    def __init__(self, nc: Any, timeout: float):
        self._nc = nc
        self._timeout = timeout
        self._prefix = nc.new_inbox() + "."
        self._waiting: dict[str, _Append] = {}
        self._tokens = itertools.count()
        self._queued: list[tuple[_Append, Sequence[Message]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._nc.subscribe(self._prefix + "*", cb=self._on_ack)

    async def publish(self, messages: Sequence[Message]) -> None:
        """``publish_soon``, awaited: return once acknowledged, or raise why not."""
        future = asyncio.get_running_loop().create_future()

        def done(error: BaseException | None) -> None:
            if future.done():  # its waiter was cancelled
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        self.publish_soon(messages, done)
        await future

    def publish_soon(self, messages: Sequence[Message], done: Done) -> None:
        """Queue ``messages`` for this turn's publish; ``done(None)`` once all are acknowledged,
        ``done(error)`` otherwise, called once, on the event loop."""
        if not messages:
            asyncio.get_running_loop().call_soon(done, None)
            return
        append = _Append([str(next(self._tokens)) for _ in messages], done)
        for token in append.tokens:
            self._waiting[token] = append
        if not self._queued:  # the first of this turn: the task runs once the turn's requests joined
            task = asyncio.get_running_loop().create_task(self._send())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        self._queued.append((append, messages))

    async def _send(self) -> None:
        queued, self._queued = self._queued, []
        asyncio.get_running_loop().call_later(self._timeout, self._expire, [append for append, _ in queued])
        prefix, publish = self._prefix, self._nc.publish
        try:
            for append, messages in queued:
                for token, (subject, body, headers) in zip(append.tokens, messages):
                    await publish(subject, body, reply=prefix + token, headers=headers)
        except Exception as exc:  # noqa: BLE001 - closed, or no room to write: said to every waiter
            for append, _ in queued:
                self._finish(append, BufferUnavailable(f"nats could not store the records: {type(exc).__name__}"))

    def _expire(self, appends: list[_Append]) -> None:
        for append in appends:
            self._finish(append, TimeoutError())

    def _finish(self, append: _Append, error: BaseException | None) -> None:
        done, append.done = append.done, None
        if done is None:
            return
        for token in append.tokens:
            self._waiting.pop(token, None)
        try:
            done(error)
        except Exception as exc:  # one appender's failure must not leave the others of its turn waiting
            logger("buffer").error("an appender failed on its outcome", error=repr(exc))

    async def _on_ack(self, msg: Any) -> None:
        append = self._waiting.get(msg.subject[len(self._prefix):])
        if append is None:
            return
        if msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
            self._finish(append, BufferUnavailable("no nats stream took the records (no responders)"))
        elif b'"error"' in msg.data:
            self._finish(append, _refusal(json.loads(msg.data).get("error") or {}))
        else:
            append.owed -= 1
            if append.owed == 0:
                self._finish(append, None)


def _refusal(error: dict[str, Any]) -> Exception:
    description = str(error.get("description", "")) or "no description"
    if "maximum bytes" in description.lower() or error.get("err_code") == STREAM_FULL:
        return BufferFull("the nats stream holds its limit of bytes")
    return BufferUnavailable(f"nats refused the records: {description} (err_code {error.get('err_code')})")
