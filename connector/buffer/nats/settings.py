"""The NATS buffer's settings, apart from the buffer (``jetstream.py``) and from the config type
(``__init__.py``), so that neither imports the other."""

from __future__ import annotations

from typing import Annotated

import msgspec

from ...secret import Secret


class NatsSettings(msgspec.Struct, kw_only=True, frozen=True):
    """``type = "nats"``: ``url`` (or a list), ``stream``; credentials: ``user`` + ``password``,
    ``token`` or ``creds_file``; TLS: ``tls_ca``, ``tls_cert``, ``tls_key``. ``replicas`` of
    the streams (use 3 in production), retention limits ``max_bytes`` and ``max_age_seconds``,
    ``duplicate_window_seconds``, and ``ack_wait_seconds`` after which an unacknowledged record
    goes to another daemon. At start, the daemon waits up to ``startup_wait_seconds`` for NATS.
    A sink's consumer handing out nothing for ``stall_seconds`` while records wait is re-bound."""

    url: str | list[str] = "nats://127.0.0.1:4222"
    stream: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+$")] = "connector"
    user: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    creds_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    max_bytes: int = 1 << 30
    max_age_seconds: float = 7 * 24 * 3600.0
    duplicate_window_seconds: float = 120.0
    ack_wait_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    connect_timeout_seconds: float = 5.0
    startup_wait_seconds: float = 30.0
    publish_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    stall_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    allow_unsafe_server: bool = False
