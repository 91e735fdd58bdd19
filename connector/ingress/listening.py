"""The listeners' sockets, TLS contexts and open-file limit, set up before anything starts.

``listen``: a bound socket, so a port in use is one clear error, not a half-started daemon.
``Certificates``: a listener's TLS context (TLS 1.2+), whose certificate and key are read again
on SIGHUP; a bad new pair is logged and the old one kept. ``raise_open_file_limit``: room for
``max_connections`` (systemd's default soft limit is 1,024 open files).
"""

from __future__ import annotations

import os
import resource
import socket
import ssl
import tempfile

from ..config import ListenerConfig
from ..errors import ConfigError, ConnectorError
from ..logging import logger

FILES_BESIDE_CONNECTIONS = 256  # the buffer's files, the delivery process's pipes, sinks' clients


def listen(config: ListenerConfig, section: str) -> socket.socket:
    """A listening socket on ``config``'s host and port (``section`` names it in errors)."""
    where = f"{config.host}:{config.port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(config.host or None, config.port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConnectorError(f"cannot listen on {where}: {exc.strerror or exc} (check [{section}] host)") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = (f"another program listens there: stop it, or set [{section}] port" if exc.errno == 98
                else f"check [{section}]")
        raise ConnectorError(f"cannot listen on {where}: {exc.strerror} ({hint})") from None
    sock.set_inheritable(False)
    return sock


class Certificates:
    """The TLS context of a listener, from ``cert`` and ``key`` (PEM files); ``reload`` re-reads them."""

    def __init__(self, cert: str, key: str, section: str):
        self.cert, self.key, self.section = cert, key, section
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        try:
            self._load(self.context)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"[{section}] tls_cert / tls_key: cannot load {cert} and {key}: {_reason(exc)}") from None

    def reload(self) -> bool:
        """Read the pair again (a renewed certificate); keep the old one when the new one is bad.

        Both files are read once and the very bytes read are tried on a scratch context first,
        so the live one never holds half a pair, even while certbot swaps the files. New
        connections get the new certificate; open ones keep theirs.
        """
        log = logger(self.section)
        try:
            self._load(self.context, check_first=True)
        except (OSError, ssl.SSLError) as exc:
            log.error("the new certificate could not be loaded; keeping the one in use", cert=self.cert, key=self.key,
                      error=_reason(exc), detail="fix the files, then send SIGHUP again")
            return False
        log.info("certificate reloaded", cert=self.cert)
        return True

    def _load(self, context: ssl.SSLContext, check_first: bool = False) -> None:
        with open(self.cert, "rb") as cert, open(self.key, "rb") as key:
            pair = cert.read(), key.read()
        with tempfile.TemporaryDirectory() as private:  # 0700: the key's copy is nobody else's
            paths = os.path.join(private, "cert.pem"), os.path.join(private, "key.pem")
            for path, data in zip(paths, pair):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                    out.write(data)
            if check_first:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(*paths)
            context.load_cert_chain(*paths)


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


def raise_open_file_limit(needed: int) -> str | None:
    """Raise this process's soft open-file limit to ``needed`` (at most the hard limit); a warning
    to log when the hard limit is lower, else None."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        return (f"max_connections needs {needed} open files but the hard limit is {hard}: past about "
                f"{hard - FILES_BESIDE_CONNECTIONS} connections new ones are refused; raise it "
                f"(systemd: LimitNOFILE={needed}) or lower max_connections")
    return None
