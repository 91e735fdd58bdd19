"""Test helpers for connector and for plugin authors (a pytest plugin, loaded automatically).

- ``free_port()``: a free TCP port on 127.0.0.1.
- ``DaemonProcess``: the real daemon as a subprocess on a config you write, with helpers to
  wait until it serves, post to it, stop it with a signal, or kill it.
- fixture ``daemon_factory``: makes ``DaemonProcess`` objects in ``tmp_path`` and stops them.
- ``LocalDaemon`` and fixture ``local_daemon_factory``: the same daemon (one process: ingress,
  buffer, sinks) inside the test's process, on a background event loop, serving real HTTP on
  a free port: no process start, so tests of behaviour that is not about processes run fast.
- ``metric(text, name, **labels)``: a value read off ``/metrics``.
- ``run_command(*args, env=...)``: ``connector ARGS`` in this process, its exit code and output.
- ``ThreadedServer``: serve an ASGI app (a fake of some API) on 127.0.0.1 in a thread.
- ``FakeSegment``: a local stand-in for Segment's ``/v1/batch`` that records what arrives,
  checks the write key and Segment's limits, and fails by script; fixture ``fake_segment``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import gzip
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (Linux: read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # it ended meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class DaemonProcess:
    """``connector run`` in a subprocess, on ``config`` written to ``directory/connector.toml``.

    ``{port}`` in the config text is replaced by a free port (also in ``self.port``); ``args``
    are added to ``connector run`` (``["--env-file", ".env"]``).
    """

    def __init__(self, directory: Path, config: str, env: dict[str, str] | None = None,
                 args: list[str] | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = self.directory / "connector.toml"
        self.config_path.write_text(config.replace("{port}", str(self.port)))
        self.env = {**os.environ, **(env or {})}
        self.args = list(args or [])
        self.process: subprocess.Popen[bytes] | None = None
        self.stdout_path = self.directory / "daemon.stdout"
        self.stderr_path = self.directory / "daemon.stderr"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> DaemonProcess:
        """Start the daemon and wait until ``/healthz`` answers."""
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector", "run", "-c", str(self.config_path), *self.args],
                stdout=out, stderr=err, env=self.env, cwd=self.directory,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the daemon did not serve within {timeout} s:\n{self.logs()}")

    def post(self, path: str, body: bytes | str, headers: dict[str, str] | None = None,
             **kwargs: Any) -> httpx.Response:
        """POST ``body`` as JSON to ``path``."""
        data = body.encode() if isinstance(body, str) else body
        return httpx.post(self.base_url + path, content=data,
                          headers={"content-type": "application/json", **(headers or {})}, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base_url + path)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill(self) -> int:
        """SIGKILL: no chance to clean up."""
        return self.stop(signal.SIGKILL)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def children(self) -> list[int]:
        """The pids of the daemon's child processes (its delivery process, when it runs one)."""
        assert self.process is not None
        return child_pids(self.process.pid)

    def dead_letters(self) -> str:
        """What ``connector dlq list`` prints for this daemon's config: one dead letter a line."""
        return subprocess.run([sys.executable, "-m", "connector", "dlq", "list", "-c", str(self.config_path)],
                              capture_output=True, text=True, env=self.env).stdout

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.stderr_path,) if p.exists())

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    """Make ``DaemonProcess`` objects (``daemon_factory(config, env=..., directory=..., args=...)``)."""
    made: list[DaemonProcess] = []

    def make(config: str, env: dict[str, str] | None = None, directory: Path | None = None,
             args: list[str] | None = None) -> DaemonProcess:
        daemon = DaemonProcess(directory or tmp_path, config, env, args)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` in Prometheus text ``text`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class ThreadedServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread (for fakes in tests)."""

    def __init__(self, app: Any, port: int | None = None):
        self.app = app
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        import threading

        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None,
                                lifespan="off", access_log=False, loop="asyncio", interface="asgi3")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server is not None and self._server.started, timeout=10)
        return self

    def stop(self) -> None:
        """Stop listening (connections are then refused) until ``start`` again."""
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None


class FakeSegment(ThreadedServer):
    """Segment's batch endpoint on 127.0.0.1, in a thread.

    ``script`` is consumed one entry per request: an HTTP status (``500``), ``(429, seconds)``
    for a 429 with Retry-After, or ``"timeout"`` (answer after ``slow_seconds``, recording
    nothing). ``chaos(rate, seconds)`` fails that share of requests at random, for that long. ``poison`` makes any batch holding that text answer 400, as Segment does for an
    invalid message. ``batches`` and ``messages`` hold what was accepted; ``violations`` lists
    any batch over 500 KB or 2,500 messages, and any message over 32 KB or without what Segment
    requires (a known type, its type's field, a userId or anonymousId, a messageId).
    """

    MAX_BATCH_BYTES = 500 * 1000
    MAX_BATCH_MESSAGES = 2500
    MAX_MESSAGE_BYTES = 32 * 1000
    REQUIRED_BY_TYPE = {"identify": None, "track": "event", "page": None, "screen": None, "group": "groupId",
                        "alias": "previousId"}

    def __init__(self, write_key: str = "test-write-key", port: int | None = None):
        super().__init__(self._app, port)
        self.write_key = write_key
        self.script: collections.deque[Any] = collections.deque()
        self.poison: str | None = None
        self.slow_seconds = 3.0
        self.batches: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.violations: list[str] = []
        self.injected: collections.Counter[str] = collections.Counter()
        self._chaos: tuple[float, float] | None = None

    def chaos(self, rate: float, seconds: float) -> None:
        """Fail ``rate`` of the requests of the next ``seconds`` with 500, 503, 429 or a timeout."""
        self._chaos = (rate, time.monotonic() + seconds)

    def _next_action(self) -> Any:
        if self.script:
            return self.script.popleft()
        if self._chaos is not None and time.monotonic() < self._chaos[1] and random.random() < self._chaos[0]:
            action = random.choice([500, 503, (429, 1), "timeout"])
            self.injected[str(action)] += 1
            return action
        return None

    def message_ids(self) -> set[str]:
        return {m["messageId"] for m in self.messages}

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the connection was reset mid-request: nothing arrived
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(headers)
        action = self._next_action()
        status, answer, extra = self._answer(scope["path"], headers, body, action)
        if action == "timeout":
            await asyncio.sleep(self.slow_seconds)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *extra]})
        await send({"type": "http.response.body", "body": msgspec.json.encode(answer)})

    def _answer(self, path: str, headers: dict[str, str], body: bytes, action: Any) -> tuple[int, Any, list]:
        if path != "/v1/batch":
            return 404, {"error": "not found"}, []
        expected = "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()
        if headers.get("authorization") != expected:
            return 401, {"error": "invalid write key"}, []
        if isinstance(action, int):
            return action, {"error": "scripted failure"}, []
        if isinstance(action, tuple):
            return action[0], {"error": "rate limited"}, [(b"retry-after", str(action[1]).encode())]
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if len(body) > self.MAX_BATCH_BYTES:
            self.violations.append(f"batch of {len(body)} bytes")
        payload = msgspec.json.decode(body)
        batch = payload.get("batch", [])
        if len(batch) > self.MAX_BATCH_MESSAGES:
            self.violations.append(f"batch of {len(batch)} messages")
        for message in batch:
            self.violations.extend(self._check(message))
        if self.poison is not None and self.poison.encode() in body:
            return 400, {"error": "invalid message"}, []
        if action == "timeout":
            return 200, {"success": True}, []
        self.batches.append(payload)
        self.messages.extend(batch)
        return 200, {"success": True}, []


    def _check(self, message: Any) -> list[str]:
        """What Segment's Tracking API documents as required of a message, that it lacks."""
        if not isinstance(message, dict):
            return [f"a message that is not an object: {message!r:.80}"]
        where = f"message {message.get('messageId')}"
        problems = []
        if len(msgspec.json.encode(message)) > self.MAX_MESSAGE_BYTES:
            problems.append(f"{where} over 32 KB")
        if message.get("type") not in self.REQUIRED_BY_TYPE:
            problems.append(f"{where} has type {message.get('type')!r}")
        elif (field := self.REQUIRED_BY_TYPE[message["type"]]) and not message.get(field):
            problems.append(f"{where} ({message['type']}) has no {field}")
        if not message.get("userId") and not message.get("anonymousId"):
            problems.append(f"{where} has neither userId nor anonymousId")
        if not message.get("messageId"):
            problems.append("a message without messageId")
        return problems


class ResettingProxy:
    """A TCP proxy on 127.0.0.1 to ``target_port`` that aborts connections at random.

    Each chunk a client sends is dropped, and both connections reset, with probability
    ``reset_rate`` (set it at any time): what a flaky network or load balancer does.
    """

    def __init__(self, target_port: int, reset_rate: float = 0.0):
        self.target_port = target_port
        self.reset_rate = reset_rate
        self.port = free_port()
        self.resets = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: Any = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ResettingProxy:
        import threading

        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(ready)), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _serve(self, ready: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        ready.set()
        await self._stopped.wait()
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await server.wait_closed()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)  # type: ignore[union-attr]
            self._thread.join(10)
            self._loop = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter, from_client: bool) -> None:
            try:
                while data := await source.read(65536):
                    if from_client and random.random() < self.reset_rate:
                        self.resets += 1
                        writer.transport.abort()
                        up_writer.transport.abort()
                        return
                    target.write(data)
                    await target.drain()
                target.close()
            except OSError:
                writer.transport.abort()
                up_writer.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        finally:
            self._writers.difference_update((writer, up_writer))
            writer.transport.abort()
            up_writer.transport.abort()


@pytest.fixture
def fake_segment() -> Iterator[FakeSegment]:
    """A started ``FakeSegment`` (write key ``test-write-key``), stopped after the test."""
    fake = FakeSegment().start()
    yield fake
    fake.stop()


class LocalDaemon:
    """The daemon inside this process (sinks in the same process, no signals), on a background
    event loop, serving real HTTP on ``{port}``: ``start``, ``post``, ``get``, ``stop``,
    ``dead_letters``, ``logs`` as ``DaemonProcess`` has them. ``env`` is in the environment while
    the config is read (and plugins are loaded), with what ``env_file`` sets beneath it (as
    ``connector run --env-file``); logs go to ``directory/daemon.stderr``."""

    def __init__(self, directory: Path, config: str, env: dict[str, str] | None = None,
                 env_file: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = self.directory / "connector.toml"
        self.config_path.write_text(config.replace("{port}", str(self.port)))
        self.env = dict(env or {})
        self.env_file = env_file
        self.stderr_path = self.directory / "daemon.stderr"
        self.daemon: Any = None
        self._portal: Any = None
        self._portal_cm: Any = None
        self._run: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> LocalDaemon:
        """Assemble and start the daemon; return once ``/healthz`` answers."""
        import anyio.from_thread
        import msgspec as _msgspec

        from . import logging as connector_logging
        from .assemble import main_process
        from .config import load_config
        from .envfile import read_env_file
        from .plugins import load_registry

        from_file = read_env_file(str(self.directory / self.env_file)) if self.env_file else {}
        env = {**{k: v for k, v in from_file.items() if k not in os.environ}, **self.env}
        with _environment(env):
            config = load_config(str(self.config_path), load_registry())
        config.service = _msgspec.structs.replace(config.service, delivery_process=False)
        self._log = open(self.stderr_path, "a")  # noqa: SIM115 - closed by stop
        connector_logging.configure(config.service.log_level, config.secrets, stream=self._log, role="daemon")
        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()
        try:
            self.daemon = self._portal.call(lambda: main_process(config, signals=False))  # in the loop
        except BaseException:
            self._close_portal()
            raise
        self._run = self._portal.start_task_soon(self.daemon.run)
        wait_until(lambda: self._serving(), timeout=timeout)
        return self

    def _serving(self) -> bool:
        if self._run.done():  # raises what made it stop, if it raised
            raise RuntimeError(f"the daemon stopped with {self._run.result()}:\n{self.logs()}")
        try:
            return httpx.get(self.base_url + "/healthz", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    def post(self, path: str, body: bytes | str, headers: dict[str, str] | None = None,
             **kwargs: Any) -> httpx.Response:
        """POST ``body`` as JSON to ``path``."""
        data = body.encode() if isinstance(body, str) else body
        return httpx.post(self.base_url + path, content=data,
                          headers={"content-type": "application/json", **(headers or {})}, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base_url + path)

    def stop(self, timeout: float = 30.0) -> int:
        """Stop as on SIGTERM (drain within the grace period); the exit code ``run`` returned."""
        if self._run is None:
            return 0
        try:
            self._portal.call(self.daemon.stop)
            return int(self._run.result(timeout))
        finally:
            self._run = None
            self._close_portal()

    def wait(self, timeout: float = 30.0) -> int:
        """The exit code once the daemon stops by itself (a crashed component: 1)."""
        try:
            return int(self._run.result(timeout))
        finally:
            self._run = None
            self._close_portal()

    def _close_portal(self) -> None:
        if self._portal_cm is not None:
            self._portal_cm.__exit__(None, None, None)
            self._portal_cm = self._portal = None
        self._log.close()

    def dead_letters(self) -> str:
        """The dead letters, one a line, as ``connector dlq list`` prints them."""
        from .dlq import line

        letters = self._portal.call(self.daemon.buffer.dead_letters)
        return "".join(line(letter) + "\n" for letter in letters)

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the duration of the block (None: unset)."""
    saved = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class CommandResult(msgspec.Struct):
    """What ``run_command`` gives back, like ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


def run_command(*args: str, env: dict[str, str | None] | None = None) -> CommandResult:
    """``connector ARGS`` run in this process (no interpreter to start), with ``env`` changed
    meanwhile (None unsets a variable); its exit code and what it printed."""
    import io

    import structlog

    from .cli import main

    out, err = io.StringIO(), io.StringIO()
    logging_config = structlog.get_config()
    with _environment(env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, a wrong argument
            code = exc.code if isinstance(exc.code, int) else 1
    structlog.configure(**logging_config)
    return CommandResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def local_daemon_factory(tmp_path: Path) -> Iterator[Any]:
    """Make ``LocalDaemon`` objects (``local_daemon_factory(config, env=..., directory=...)``); stopped after."""
    made: list[LocalDaemon] = []

    def make(config: str, env: dict[str, str] | None = None, directory: Path | None = None,
             env_file: str | None = None) -> LocalDaemon:
        daemon = LocalDaemon(directory or tmp_path, config, env, env_file)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop()
