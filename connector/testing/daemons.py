"""The daemon under test: as a subprocess (``DaemonProcess``), inside the test's process
(``LocalDaemon``), and the command line run in process (``run_command``)."""

from __future__ import annotations

import contextlib
import os
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
import structlog

from .waiting import child_pids, free_ports, wait_until


def with_free_ports(config: str) -> tuple[str, int, int]:
    """``config`` with ``{port}`` and ``{admin_port}`` made free ports, and an ``[admin]`` table on
    its free port when the config has none (so daemons under test never meet on 8081)."""
    port, admin_port = free_ports(2)
    if not any(line.strip().startswith("[admin]") for line in config.splitlines()):
        config += "\n[admin]\nport = {admin_port}\n"
    return config.replace("{port}", str(port)).replace("{admin_port}", str(admin_port)), port, admin_port


class _Served:
    """What a test does with a daemon that serves on ``127.0.0.1:port`` (the webhooks) and
    ``127.0.0.1:admin_port`` (the admin listener)."""

    port: int
    admin_port: int
    admin_token: str | None = None  # sent by ``admin_get`` when set
    admin_scheme = "http"  # "https" for an admin listener with TLS (tests do not verify its certificate)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"{self.admin_scheme}://127.0.0.1:{self.admin_port}"

    def admin_get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET ``path`` on the admin listener (with ``admin_token`` when set)."""
        headers = {"authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
        return httpx.get(self.admin_url + path, headers=headers, verify=False, **kwargs)

    def post(self, path: str, body: bytes | str, headers: dict[str, str] | None = None,
             **kwargs: Any) -> httpx.Response:
        """POST ``body`` as JSON to ``path``."""
        data = body.encode() if isinstance(body, str) else body
        return httpx.post(self.base_url + path, content=data,
                          headers={"content-type": "application/json", **(headers or {})}, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base_url + path, **kwargs)


class DaemonProcess(_Served):
    """``connector run`` in a subprocess, on ``config`` written to ``directory/connector.toml``.

    ``{port}`` and ``{admin_port}`` in the config text are replaced by free ports (also in
    ``self.port`` and ``self.admin_port``; see ``with_free_ports``); ``args`` are added to
    ``connector run`` (``["--env-file", ".env"]``).
    """

    def __init__(self, directory: Path, config: str, env: dict[str, str] | None = None,
                 args: list[str] | None = None, preexec_fn: Any = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        text, self.port, self.admin_port = with_free_ports(config)
        self.config_path = self.directory / "connector.toml"
        self.config_path.write_text(text)
        self.env = {**os.environ, **(env or {})}
        self.args = list(args or [])
        self.preexec_fn = preexec_fn  # run in the child before it starts (a lower open-file limit, say)
        self.process: subprocess.Popen[bytes] | None = None
        self.stdout_path = self.directory / "daemon.stdout"
        self.stderr_path = self.directory / "daemon.stderr"

    def start(self, timeout: float = 15.0) -> DaemonProcess:
        """Start the daemon and wait until the admin listener's ``/healthz`` answers and the public
        one takes connections (the public one may speak HTTPS): both, so that another process that
        took one of its free ports meanwhile is not taken for it."""
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector", "run", "-c", str(self.config_path), *self.args],
                stdout=out, stderr=err, env=self.env, cwd=self.directory, preexec_fn=self.preexec_fn,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.process.returncode}:\n{self.logs()}")
            if _healthy(self.admin_url) and _listening(self.port):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"the daemon did not serve within {timeout} s:\n{self.logs()}")

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


def _healthy(url: str) -> bool:
    """Whether ``url``'s ``/healthz`` answers 200 (an HTTPS listener's certificate not verified)."""
    try:
        return httpx.get(url + "/healthz", timeout=0.5, verify=False).status_code == 200
    except httpx.TransportError:
        return False


def _listening(port: int) -> bool:
    """Whether something takes TCP connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


class LocalDaemon(_Served):
    """The daemon inside this process (sinks in the same process, no signals), on a background
    event loop, serving real HTTP on ``{port}``: ``start``, ``post``, ``get``, ``stop``,
    ``dead_letters``, ``logs`` as ``DaemonProcess`` has them. ``env`` is in the environment while
    the config is read (and plugins are loaded), with what ``env_file`` sets beneath it (as
    ``connector run --env-file``); logs go to ``directory/daemon.stderr``."""

    def __init__(self, directory: Path, config: str, env: dict[str, str] | None = None,
                 env_file: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        text, self.port, self.admin_port = with_free_ports(config)
        self.config_path = self.directory / "connector.toml"
        self.config_path.write_text(text)
        self.env = dict(env or {})
        self.env_file = env_file
        self.stderr_path = self.directory / "daemon.stderr"
        self.daemon: Any = None
        self._portal: Any = None
        self._portal_cm: Any = None
        self._run: Any = None

    def start(self, timeout: float = 15.0) -> LocalDaemon:
        """Assemble and start the daemon; return once ``/healthz`` answers."""
        import anyio.from_thread
        import msgspec as _msgspec

        from .. import logging as connector_logging
        from ..config import load_config
        from ..daemon.assemble import main_process
        from ..envfile import read_env_file
        from ..plugins import load_registry

        from_file = read_env_file(str(self.directory / self.env_file)) if self.env_file else {}
        env: dict[str, str | None] = {**{k: v for k, v in from_file.items() if k not in os.environ}, **self.env}
        with _environment(env):
            config = load_config(str(self.config_path), load_registry())
        config.service = _msgspec.structs.replace(config.service, delivery_process=False)
        self._log = open(self.stderr_path, "a")  # noqa: SIM115 - closed by stop
        self._logging_before = structlog.get_config()
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
            return self.admin_get("/healthz", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

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
        structlog.configure(**self._logging_before)  # the test's logging as it was, not the closed file
        self._log.close()

    def dead_letters(self) -> str:
        """The dead letters, one a line, as ``connector dlq list`` prints them."""
        from ..cli.dlq import line

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

    from ..cli.main import main

    out, err = io.StringIO(), io.StringIO()
    logging_config = structlog.get_config()
    with _environment(env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, a wrong argument
            code = exc.code if isinstance(exc.code, int) else 1
    structlog.configure(**logging_config)
    return CommandResult(code, out.getvalue(), err.getvalue())
