"""Sockets and servers under the daemon's control.

``listen``: the ingress's socket, bound before anything else starts, so a port in use is one
clear error, not a half-started daemon (``httpserver.py`` serves on it). ``QuietServer``: uvicorn
without signal handlers of its own (the daemon decides when to stop), for the delivery process's
control server on its unix socket.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from .config import ServerConfig
from .errors import ConnectorError


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(config: ServerConfig) -> socket.socket:
    """The ingress's listening socket, bound before anything else starts (so a port in use is one
    clear error, not a half-started daemon)."""
    where = f"{config.host}:{config.port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(config.host or None, config.port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConnectorError(f"cannot listen on {where}: {exc.strerror or exc} (check [server] host)") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = "another program listens there: stop it, or set [server] port" if exc.errno == 98 else "check [server]"
        raise ConnectorError(f"cannot listen on {where}: {exc.strerror} ({hint})") from None
    sock.set_inheritable(False)
    return sock
