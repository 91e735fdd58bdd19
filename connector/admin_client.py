"""How the command line reaches the admin listener of the daemon that runs a config.

Wildcard hosts are reached on loopback; ``[admin] token`` is sent as a Bearer token; an HTTPS
admin listener is trusted by its own certificate (``admin.tls_cert``), whatever name it carries.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import ConnectorError

if TYPE_CHECKING:  # httpx is imported by the commands that call a daemon, not by ``connector run``
    import httpx

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def admin_url(config: Config, path: str) -> str:
    """The URL of ``path`` on the admin listener of the daemon that runs ``config``."""
    admin = config.admin
    host = _WILDCARDS.get(admin.host, admin.host)
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if admin.tls_cert else 'http'}://{host}:{admin.port}{path}"


def client_options(config: Config) -> dict[str, Any]:
    """``httpx`` client options for the admin listener: its token and its certificate."""
    admin = config.admin
    headers = {"authorization": f"Bearer {admin.token}"} if admin.token else {}
    verify: ssl.SSLContext | bool = True
    if admin.tls_cert:
        verify = ssl.create_default_context(cafile=config.path_of(admin.tls_cert))
        verify.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the listener's own certificate is the anchor
        verify.check_hostname = False  # it is that very certificate, reached on the configured address
    return {"headers": headers, "verify": verify}


def check_same_buffer(config: Config, status: dict[str, Any]) -> None:
    """Refuse to go on when the daemon answering at the config's admin address keeps another
    buffer than the config's (another daemon on that port): its state and dead letters are not
    this config's."""
    theirs = status.get("buffer", {}).get("location")
    ours = config.buffer.build(config.directory).location
    if theirs != ours:
        raise ConnectorError(f"the daemon at {admin_url(config, '')} keeps another buffer ({theirs}) than "
                             f"{config.path} ({ours}): it runs another config; set [admin] port to its daemon's")


def refused(config: Config, response: httpx.Response) -> ConnectorError | None:
    """The error to show when the admin listener refused the request (None when it did not)."""
    if response.status_code == 401:
        return ConnectorError(f"the admin listener at {admin_url(config, '')} refused the token: "
                              "give this command the admin.token the daemon runs with "
                              "(its environment variable, or --env-file)")
    if response.status_code >= 400:
        return ConnectorError(f"the admin listener at {admin_url(config, '')} answered {response.status_code}: "
                              f"{response.text[:300]}")
    return None
