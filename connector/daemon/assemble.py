"""Each process assembles only what it runs.

- one process (``delivery_process = false``, one CPU core, or the memory buffer): ingest and the
  sink pipelines;
- the main process of two: ingest, and the delivery process as ``RemoteDelivery``;
- the delivery process: the sink pipelines, a control server for the main process, and a watch
  on the main process.
"""

from __future__ import annotations

from ..config import Config, ListenerConfig
from ..delivery.local import LocalDelivery
from ..delivery.pipeline import READ_BATCH_ALONE
from ..delivery.process import MainProcessWatch, RemoteDelivery
from ..graph import build_sinks, build_sources, config_warnings
from ..ingress.listening import FILES_BESIDE_CONNECTIONS, Certificates, listen, raise_open_file_limit
from ..logging import logger
from ..tap import TapHub
from .ingest import Ingest, Listener
from .runtime import Daemon


def main_process(config: Config, signals: bool = True) -> Daemon:
    """The process ``connector run`` starts: sources and the ingress; sinks here or in a child.

    The components and the TLS contexts are built first (building opens nothing: a config error
    is reported before anything else), then the buffer is claimed and the ports bound, before
    anything starts: a second daemon on the same buffer, or a port in use, is one clear error.
    ``signals=False``: only ``Daemon.stop`` stops it (it runs inside another program, a test).
    """
    log = logger("daemon")
    sources = build_sources(config)
    sinks = build_sinks(config)  # in a delivery process too: refuse what it would refuse, before it starts
    certificates = {section: _certificates(config, section) for section in ("server", "admin")}
    buffer = config.buffer.build(config.directory)
    buffer.claim()
    public = Listener.of(listen(config.server, "server"), config.server, certificates["server"])
    admin = Listener.of(listen(config.admin, "admin"), config.admin, certificates["admin"])
    too_few_files = raise_open_file_limit(config.server.max_connections + config.admin.max_connections
                                          + FILES_BESIDE_CONNECTIONS)
    for warning in [*config_warnings(config), *([too_few_files] if too_few_files else [])]:
        log.warning(warning)
    taps = TapHub()
    delivery: LocalDelivery | RemoteDelivery
    if config.delivery_process:
        delivery = RemoteDelivery(config.path, config.service.shutdown_grace_seconds)
    else:
        delivery = LocalDelivery(buffer, sinks, taps)
    ingest = Ingest(config, buffer, sources, delivery, taps, public, admin)
    announce = {"listen": _url(config.server), "admin": _url(config.admin),
                "webhooks": {s.name: s.path for s in sources.webhook}, "sinks": list(config.sinks),
                "buffer": type(buffer).__name__}
    hangup = [ingest.reload, *([delivery.pass_hangup] if isinstance(delivery, RemoteDelivery) else [])]
    return Daemon(config, buffer, [ingest, delivery, ingest.admin], delivery, taps, announce, signals=signals,
                  on_hangup=hangup)


def _certificates(config: Config, section: str) -> Certificates | None:
    listener: ListenerConfig = getattr(config, section)
    if listener.tls_cert is None or listener.tls_key is None:
        return None
    return Certificates(config.path_of(listener.tls_cert), config.path_of(listener.tls_key), section)


def _url(listener: ListenerConfig) -> str:
    return f"{'https' if listener.tls_cert else 'http'}://{listener.host}:{listener.port}"


def delivery_process(config: Config, control_socket: str, main_pid: int) -> Daemon:
    """The second process: the sink pipelines on what the main process stores (its SQLite file, or
    the NATS stream)."""
    from ..delivery.control import ControlServer

    buffer = config.buffer.build(config.directory, appended_elsewhere=True)
    taps = TapHub()
    delivery = LocalDelivery(buffer, build_sinks(config), taps, READ_BATCH_ALONE)
    control = ControlServer(control_socket, delivery, taps)
    watch = MainProcessWatch(main_pid)
    return Daemon(config, buffer, [delivery, control, watch], delivery, taps, {"sinks": list(config.sinks)},
                  ignore_sigint=True)
