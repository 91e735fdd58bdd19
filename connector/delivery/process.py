"""``[service] delivery_process`` (``"auto"``: on 2+ cores): the sinks run in a second process.

The main process serves HTTP and polls sources; ``RemoteDelivery`` starts ``connector run
--role delivery``, which runs the sink pipelines on the same SQLite file (or NATS stream), and
answers ``/status``, ``/metrics`` and ``/tap`` on a unix socket only the main process knows
(``control.py``): the one road of the sinks' state. The main process's admin ``/status`` shows
its sinks live (and, while it cannot answer, what it answered last: the main process asks twice
a second, for its lag gauges too), its metrics are merged into the main process's, and its taps
(of mappers and sinks) are streamed to the main process's clients.
The delivery process stops, draining as on SIGTERM, when the main process is gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import httpx
import msgspec

from ..logging import logger
from .local import SinkState, Task

STATE_SECONDS = 0.5
CONTROL_TIMEOUT_SECONDS = 2.0
TAP_RETRY_SECONDS = 0.2
MAIN_PROCESS_POLL_SECONDS = 0.5


class RemoteDelivery:
    """In the main process: the delivery process, started, watched and stopped; its sinks' states."""

    def __init__(self, config_path: str, grace: float):
        self.config_path = config_path
        self.grace = grace
        self.reading_sinks: list[str] = []  # the delivery process keeps the cursors
        self.states: dict[str, SinkState] = {}
        self.stopping = False
        self.exited = anyio.Event()
        self._process: anyio.abc.Process | None = None
        self._socket_dir = tempfile.mkdtemp(prefix="connector-")
        self.control_socket = os.path.join(self._socket_dir, "delivery.sock")
        # one client for the daemon's life: a new one a request cost ~45 ms of the ingest loop (its
        # TLS context, never used over a unix socket), every /metrics and /status
        self._control = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=self.control_socket, verify=False),
                                          base_url="http://delivery", timeout=CONTROL_TIMEOUT_SECONDS)
        self.log = logger("delivery")

    def tasks(self) -> list[Task]:
        """The process (the daemon stops when it ends) and the mirror of its sinks' states."""
        return [Task("delivery", self._run, ends_daemon=True), Task("delivery", self._mirror_states)]

    async def _run(self) -> None:
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
            with anyio.CancelScope(shield=True):
                await self._control.aclose()
        if code not in (0, -signal.SIGTERM):
            raise RuntimeError(f"the delivery process exited with {code}")
        if not self.stopping:
            self.log.info("the delivery process stopped (it was sent SIGTERM); stopping the daemon")

    async def drain(self) -> None:
        """Ask the delivery process to drain and exit (it has the same grace); kill it 5 s after."""
        self.stopping = True
        if self._process is None or self.exited.is_set():
            return
        self._process.send_signal(signal.SIGTERM)
        with anyio.CancelScope(shield=True):  # past the caller's grace too: never leave it behind
            with anyio.move_on_after(self.grace + 5) as scope:
                await self.exited.wait()
            if scope.cancelled_caught:
                self._process.kill()
                await self.exited.wait()

    def pass_hangup(self) -> None:
        """SIGHUP to the delivery process too (what its sinks write), once it listens for it: its
        control socket is there (before, SIGHUP's default action would end it)."""
        if self._process is not None and not self.exited.is_set() and os.path.exists(self.control_socket):
            self._process.send_signal(signal.SIGHUP)

    async def _mirror_states(self) -> None:
        """Keep ``states`` (the lag gauges, and ``/status`` while the delivery process cannot
        answer) up to date with what it answers on its control socket."""
        while True:
            if (response := await self._get("/status")) is not None:
                self.states = {sink: msgspec.convert(state, SinkState)
                               for sink, state in response.json()["sinks"].items()}
            await anyio.sleep(STATE_SECONDS)

    async def _get(self, path: str) -> httpx.Response | None:
        try:
            response = await self._control.get(path)
            response.raise_for_status()
            return response
        except (httpx.HTTPError, OSError, RuntimeError):  # RuntimeError: the client is closed (stopping)
            return None

    async def metrics(self) -> str | None:
        """The delivery process's metrics (text exposition), or None while it cannot answer."""
        response = await self._get("/metrics")
        return None if response is None else response.text

    async def sink_status(self) -> dict[str, Any]:
        """Each sink's state as the delivery process sees it now (the published ``states`` when
        it cannot answer)."""
        response = await self._get("/status")
        if response is None:
            return {sink: msgspec.structs.asdict(state) for sink, state in self.states.items()}
        sinks: dict[str, Any] = response.json()["sinks"]
        return sinks

    def tap(self, component: str | None) -> AsyncIterator[bytes] | None:
        return self._tap(component)

    async def _tap(self, component: str | None) -> AsyncIterator[bytes]:
        """NDJSON lines the delivery process's mappers and sinks emit, until it stops them
        (while it is not listening yet, it is asked again every ``TAP_RETRY_SECONDS``)."""
        params = {} if component is None else {"component": component}
        while True:
            try:
                async with self._control.stream("GET", "/tap", params=params, timeout=None) as response:
                    async for line in response.aiter_lines():
                        yield line.encode() + b"\n"
                return  # it ended the stream: it is stopping
            except (httpx.HTTPError, OSError):
                await anyio.sleep(TAP_RETRY_SECONDS)
            except RuntimeError:  # the client is closed: the delivery process has ended
                return

    def lag(self) -> dict[str, int]:
        return {sink: state.lag for sink, state in self.states.items()}


class MainProcessWatch:
    """In the delivery process: stop (draining, as on SIGTERM) when the main process is gone,
    killed perhaps, so that a restarted daemon's delivery process is the only one."""

    def __init__(self, main_pid: int):
        self.main_pid = main_pid
        self.log = logger("delivery")

    def tasks(self) -> list[Task]:
        return [Task("delivery", self._watch, ends_daemon=True)]

    async def _watch(self) -> None:
        while os.getppid() == self.main_pid:
            await anyio.sleep(MAIN_PROCESS_POLL_SECONDS)
        self.log.warning("the main process is gone; stopping")

    async def drain(self) -> None:
        """Nothing to drain."""
