"""Refused deliveries: who sent them, a rate-limited warning line each, and the last few per source.

A refusal on a source's path (a bad signature, malformed JSON, a body too large, too late...) is
a warning with the source, status, reason and client address (never the body or a secret); at
most ``LINES_PER_SECOND`` a source, then one line counting what was left out. ``/status`` shows the
last ``KEPT`` per source; ``connector_refused_deliveries_total{source,status}`` counts them all.
"""

from __future__ import annotations

import collections
import ipaddress
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from .. import metrics
from ..logging import logger

LINES_PER_SECOND = 10
KEPT = 20


class RefusedDelivery(msgspec.Struct):
    """A delivery a webhook source's path answered with an error: when, the status, why, from whom."""

    at: float
    status: int
    reason: str
    client: str | None = None


class ClientAddress:
    """The client of a request: the TCP peer, or, when the peer is a trusted proxy, the nearest
    address in ``X-Forwarded-For`` that is not a trusted proxy (read from the right: the hops
    further left are whatever the client chose to write)."""

    def __init__(self, trusted_proxies: Iterable[str]):
        self.trusted = [ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies]

    def of(self, scope: dict[str, Any]) -> str | None:
        peer = (scope.get("client") or (None,))[0]
        if not self.trusted or peer is None or not self._is_trusted(peer):
            return peer
        forwarded = b",".join(value for name, value in scope["headers"] if name == b"x-forwarded-for")
        hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


class _Window:
    __slots__ = ("started", "logged", "suppressed")

    def __init__(self) -> None:
        self.started = 0.0
        self.logged = 0
        self.suppressed = 0


class RefusalLog:
    """Each refused delivery: counted, kept (the last ``KEPT`` a source) and logged, rate-limited."""

    def __init__(self, sources: Iterable[str]):
        self.recent: dict[str, collections.deque[RefusedDelivery]] = {
            name: collections.deque(maxlen=KEPT) for name in sources}
        self._windows = {name: _Window() for name in self.recent}
        self.log = logger("server")

    def refused(self, source: str, status: int, reason: str, client: str | None) -> None:
        self.recent[source].append(RefusedDelivery(time.time(), status, reason, client))
        metrics.REFUSED.labels(source, str(status)).inc()
        window = self._windows[source]
        now = time.monotonic()
        if now - window.started >= 1.0:
            self._report_suppressed(source, window)
            window.started, window.logged = now, 0
        if window.logged < LINES_PER_SECOND:
            window.logged += 1
            self.log.warning("delivery refused", source=source, status=status, reason=reason, client=client)
        else:
            window.suppressed += 1

    def flush(self) -> None:
        """Log what was left out in windows that have ended (called about once a second)."""
        now = time.monotonic()
        for source, window in self._windows.items():
            if window.suppressed and now - window.started >= 1.0:
                self._report_suppressed(source, window)

    def _report_suppressed(self, source: str, window: _Window) -> None:
        if window.suppressed:
            self.log.warning("more deliveries refused than logged", source=source, not_logged=window.suppressed,
                             detail=f"over {LINES_PER_SECOND} refusals a second; "
                                    "connector_refused_deliveries_total counts them all")
            window.suppressed = 0
