"""``[service] delivery_process`` (``"auto"``: on 2+ cores): sinks run in a second process.

The main process serves HTTP and polls sources; it starts ``connector run --role delivery``,
which runs the sink pipelines on the same SQLite file. The delivery process publishes each
sink's state (paused, last error, counts, lag) into the database twice a second, for the
main process's lag gauges and for when it cannot ask. The delivery process also answers
``/status``, ``/metrics`` and ``/tap`` on a unix socket only the main process knows: the main
process's ``/readyz`` and ``/status`` show its sinks live, its metrics are merged into the main
process's, and its taps (of mappers and sinks) are streamed to the main process's clients. The delivery process stops, draining
as on SIGTERM, when the main process is gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.abc
import httpx
import msgspec

from . import metrics
from .logging import logger
from .pipeline import SinkPipeline

STATE_SECONDS = 0.5
CONTROL_TIMEOUT_SECONDS = 2.0
TAP_RETRY_SECONDS = 0.2


class SinkState(msgspec.Struct):
    """What the delivery process says about one sink."""

    lag: int = 0
    delivered: float = 0
    dead_letters: float = 0
    paused: str | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    updated_at: float = 0.0


def sink_states(buffer: Any, pipelines: Sequence[SinkPipeline]) -> dict[str, SinkState]:
    """The state of the sinks this process runs."""
    lag = buffer.lag()
    states = {}
    for p in pipelines:
        error, at = p.acks.last_error or (None, None)
        states[p.name] = SinkState(
            lag=lag.get(p.name, 0),
            delivered=metrics.sample("connector_component_sent_events_total", component=p.name),
            dead_letters=metrics.sample("connector_dead_letters_total", sink=p.name),
            paused=p.acks.paused_reason, last_error=error, last_error_at=at, updated_at=time.time())
    return states


async def publish_sink_states(buffer: Any, pipelines: Sequence[SinkPipeline]) -> None:
    """In the delivery process: write every sink's state to the buffer, twice a second."""
    while True:
        states = sink_states(buffer, pipelines)
        await buffer.save_sink_states({name: msgspec.json.encode(state) for name, state in states.items()})
        await anyio.sleep(STATE_SECONDS)


class DeliveryProcess:
    """In the main process: start, watch and stop the delivery process; mirror its sink states."""

    def __init__(self, config_path: str, sinks: Sequence[str], buffer: Any):
        self.config_path = config_path
        self.sinks = list(sinks)
        self.buffer = buffer
        self.states: dict[str, SinkState] = {}
        self.stopping = False
        self.exited = anyio.Event()
        self._process: anyio.abc.Process | None = None
        self._socket_dir = tempfile.mkdtemp(prefix="connector-")
        self.control_socket = os.path.join(self._socket_dir, "delivery.sock")
        self.log = logger("delivery")

    async def run(self) -> None:
        """Run the delivery process until it exits; an exit other than a clean one (0, or by
        SIGTERM before it set up its handlers) is a crash."""
        command = [sys.executable, "-m", "connector", "run", "-c", self.config_path, "--role", "delivery",
                   "--control-socket", self.control_socket, "--main-pid", str(os.getpid())]
        try:
            async with await anyio.open_process(command, stdin=None, stdout=None, stderr=None) as process:
                self._process = process
                self.log.info("delivery process started", child_pid=process.pid)
                code = await process.wait()
        finally:
            self.exited.set()
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if code not in (0, -signal.SIGTERM):
            raise RuntimeError(f"the delivery process exited with {code}")
        if not self.stopping:
            self.log.info("the delivery process stopped (it was sent SIGTERM); stopping the daemon")

    async def stop(self, grace: float) -> None:
        """Ask the delivery process to drain and exit; kill it after ``grace`` (+5 s)."""
        self.stopping = True
        if self._process is None or self.exited.is_set():
            return
        self._process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(grace + 5) as scope:
            await self.exited.wait()
        if scope.cancelled_caught:
            self._process.kill()
            await self.exited.wait()

    async def mirror_states(self) -> None:
        """Keep ``states`` up to date with what the delivery process publishes."""
        decoder = msgspec.json.Decoder(SinkState)
        while True:
            raw = await self.buffer.sink_states()
            self.states = {sink: decoder.decode(raw[sink]) for sink in self.sinks if sink in raw}
            await anyio.sleep(STATE_SECONDS)

    def _client(self, timeout: float | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=self.control_socket),
                                 base_url="http://delivery", timeout=timeout)

    async def _get(self, path: str) -> httpx.Response | None:
        try:
            async with self._client(CONTROL_TIMEOUT_SECONDS) as client:
                response = await client.get(path)
                response.raise_for_status()
                return response
        except (httpx.HTTPError, OSError):
            return None

    async def metrics(self) -> str | None:
        """The delivery process's metrics (text exposition), or None while it cannot answer."""
        response = await self._get("/metrics")
        return None if response is None else response.text

    async def live_states(self) -> dict[str, Any]:
        """Each sink's state as the delivery process sees it now (the published ``states`` when
        it cannot answer)."""
        response = await self._get("/status")
        if response is None:
            return {sink: msgspec.structs.asdict(state) for sink, state in self.states.items()}
        return response.json()["sinks"]

    async def tap(self, component: str | None) -> AsyncIterator[bytes]:
        """NDJSON lines the delivery process's mappers and sinks emit, until it stops them
        (while it is not listening yet, it is asked again every ``TAP_RETRY_SECONDS``)."""
        params = {} if component is None else {"component": component}
        async with self._client(None) as client:
            while True:
                try:
                    async with client.stream("GET", "/tap", params=params) as response:
                        async for line in response.aiter_lines():
                            yield line.encode() + b"\n"
                    return  # it ended the stream: it is stopping
                except (httpx.HTTPError, OSError):
                    await anyio.sleep(TAP_RETRY_SECONDS)

    def lag(self) -> dict[str, int]:
        return {sink: state.lag for sink, state in self.states.items()}
