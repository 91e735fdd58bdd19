"""Building blocks for a plugin's unit tests: records, envelopes, a build context, recorded acks,
a sink run to completion, and a webhook source behind the real ingress, all in process."""

from __future__ import annotations

import collections
import socket
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

import anyio
import anyio.from_thread
import httpx
import msgspec

from .. import ids
from ..buffer.memory import MemoryBuffer
from ..components import BuildContext, Sink, SourceConfig, WebhookSource
from ..config import ServerConfig
from ..ingress.httpserver import HTTPServer
from ..ingress.intake import Intake
from ..ingress.webhooks import WebhookApp
from ..logging import logger
from ..metrics import ComponentMetrics
from ..records import Envelope, Record
from ..tap import TapHub


def make_record(value: Any, source: str = "source", seq: int = 1) -> Record:
    """``value`` as the buffer would hand it to a mapper: canonical JSON body, deterministic id."""
    body = ids.canonical(value)
    return Record(seq, ids.record_id(source, body), source, time.time(), body)


def make_envelope(payload: Any, index: int = 0, record: Record | None = None, mapper: str = "mapper") -> Envelope:
    """An envelope as a sink receives it, with the id the core would give it."""
    record = record or make_record({"payload": payload, "index": index})
    return Envelope(ids.message_id(record.id, mapper, index), payload, record, index)


def build_context(name: str = "component", config_dir: str = ".", kind: str = "sink") -> BuildContext:
    """What ``build`` gets when the daemon builds the component ``name`` of ``kind`` (source,
    mapper, sink)."""
    return BuildContext(name=name, config_dir=config_dir, log=logger(name), metrics=ComponentMetrics(name, kind))


class RecordedPauses:
    """``pause``/``resume`` as a component's test double records them: ``paused`` (the reason, while
    paused) and ``pauses`` (the reason of each pause that began)."""

    def __init__(self) -> None:
        self.paused: str | None = None
        self.pauses: list[str] = []

    def pause(self, reason: str) -> None:
        if self.paused is None:
            self.pauses.append(reason)
        self.paused = reason

    def resume(self) -> None:
        self.paused = None


class RecordingAcks(RecordedPauses):
    """``connector.Acks`` that records what a sink answered for each envelope."""

    def __init__(self, sink: str = "sink"):
        super().__init__()
        self.sink = sink
        self.acked: list[Envelope] = []
        self.dead: list[tuple[Envelope, str]] = []
        self.errors: list[tuple[str, str]] = []  # (kind, reason)

    async def ack(self, envelopes: Iterable[Envelope]) -> None:
        self.acked.extend(envelopes)

    async def dead_letter(self, envelope: Envelope, reason: str, attempts: int = 1) -> None:
        self.dead.append((envelope, reason))

    def error(self, reason: str, kind: str) -> None:
        self.errors.append((kind, reason))

    def answers(self) -> collections.Counter[str]:
        """How many times each envelope id was acknowledged or dead-lettered."""
        return collections.Counter([e.id for e in self.acked] + [e.id for e, _ in self.dead])


def run_sink(sink: Sink, envelopes: Sequence[Envelope], acks: RecordingAcks | None = None,
             meanwhile: Callable[[RecordingAcks], Coroutine[Any, Any, None]] | None = None,
             timeout: float = 30.0) -> RecordingAcks:
    """Run ``sink`` on ``envelopes`` until it has answered for all of them and returned (the inbox
    is closed once they are in it); ``meanwhile(acks)`` runs beside it (break and repair the
    destination). Fails after ``timeout`` seconds."""
    acks = acks or RecordingAcks()

    async def main() -> None:
        send, receive = anyio.create_memory_object_stream[Envelope](len(envelopes) + 1)
        with anyio.fail_after(timeout):
            async with anyio.create_task_group() as tg:
                if meanwhile is not None:
                    tg.start_soon(meanwhile, acks)
                for envelope in envelopes:
                    send.send_nowait(envelope)
                send.close()
                async with receive:
                    await sink.run(receive, acks)
                tg.cancel_scope.cancel()

    anyio.run(main)
    return acks


async def eventually(condition: Callable[[], Any], timeout: float = 15.0, failing: str = "") -> Any:
    """Inside ``meanwhile``: wait until ``condition()`` is truthy; after ``timeout`` seconds fail
    with an ``AssertionError`` that says ``failing`` (what did not happen)."""
    with anyio.move_on_after(timeout):
        while not (value := condition()):
            await anyio.sleep(0.02)
        return value
    raise AssertionError(f"{failing or 'the condition never held'} (waited {timeout:g} s)")


class WebhookHarness:
    """A webhook source behind the daemon's own HTTP server and ingress (its checks, statuses and
    JSON errors), storing in a memory buffer, on 127.0.0.1 in a background thread: ``post``
    answers as the daemon would; ``stored()`` is what it kept.

        with WebhookHarness(MySourceConfig(token="t")) as harness:
            response = harness.post(b'{"a": 1}', {"authorization": "Bearer t"})
    """

    def __init__(self, config: SourceConfig, name: str = "source"):
        self.config = config
        self.name = name
        self._portal_cm: Any = None
        self._serving: Any = None

    def __enter__(self) -> WebhookHarness:
        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self.portal = self._portal_cm.__enter__()
        self.portal.call(self._build)
        self._serving = self.portal.start_task_soon(self._serve)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.sock.getsockname()[1]}", timeout=10)
        return self

    def _build(self) -> None:
        source = self.config.build(build_context(self.name, kind="source"))
        if not isinstance(source, WebhookSource):
            raise TypeError(f"{type(self.config).__qualname__} builds a {type(source).__name__}, not a WebhookSource")
        source.name = self.name
        self.path = source.path
        self.buffer = MemoryBuffer(100_000)
        self.app = WebhookApp([source], Intake(self.buffer, TapHub()), ServerConfig())
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.server = HTTPServer(self.app, self.sock, whole_body=self.app)

    async def _serve(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.app.watch_body_reads)
            await self.server.serve()
            tg.cancel_scope.cancel()

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.portal.call(self.server.shutdown)
        self._serving.result(10)
        self._portal_cm.__exit__(None, None, None)

    def post(self, body: bytes | str, headers: dict[str, str] | None = None,
             content_type: str = "application/json") -> httpx.Response:
        data = body.encode() if isinstance(body, str) else body
        return self.client.post(self.path, content=data, headers={"content-type": content_type, **(headers or {})})

    def stored(self) -> list[Record]:
        """Every record the source stored so far, in order."""
        async def read() -> list[Record]:
            await self.buffer.open(["stored"])
            return await self.buffer.read("stored", 100_000)

        stored: list[Record] = self.portal.call(read)
        return stored

    def stored_values(self) -> list[Any]:
        return [msgspec.json.decode(r.body) for r in self.stored()]
