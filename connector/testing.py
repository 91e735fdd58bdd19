"""Test helpers for connector and for plugin authors (a pytest plugin, loaded automatically).

- ``free_port()``: a free TCP port on 127.0.0.1.
- ``DaemonProcess``: the real daemon as a subprocess on a config you write, with helpers to
  wait until it serves, post to it, stop it with a signal, or kill it.
- fixture ``daemon_factory``: makes ``DaemonProcess`` objects in ``tmp_path`` and stops them.
"""

from __future__ import annotations

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
import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DaemonProcess:
    """``connector run`` in a subprocess, on ``config`` written to ``directory/connector.toml``.

    ``{port}`` in the config text is replaced by a free port (also in ``self.port``).
    """

    def __init__(self, directory: Path, config: str, env: dict[str, str] | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = self.directory / "connector.toml"
        self.config_path.write_text(config.replace("{port}", str(self.port)))
        self.env = {**os.environ, **(env or {})}
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
                [sys.executable, "-m", "connector", "run", "-c", str(self.config_path)],
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

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.stderr_path,) if p.exists())

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    """Make ``DaemonProcess`` objects (``daemon_factory(config, env=..., directory=...)``)."""
    made: list[DaemonProcess] = []

    def make(config: str, env: dict[str, str] | None = None, directory: Path | None = None) -> DaemonProcess:
        daemon = DaemonProcess(directory or tmp_path, config, env)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.kill()


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
