"""Each process assembles only what it runs.

- one process (``delivery_process = false``, or the memory or nats buffer): ingest and the sink
  pipelines;
- the main process of two: ingest, and the delivery process as ``RemoteDelivery``;
- the delivery process: the sink pipelines, a control server for the main process, and a watch
  on the main process.
"""

from __future__ import annotations

from .config import Config
from .delivery import LocalDelivery, publish_states
from .delivery_process import STATE_SECONDS, MainProcessWatch, RemoteDelivery
from .graph import build_sinks, build_sources
from .ingest import Ingest
from .listening import listen
from .pipeline import READ_BATCH_ALONE
from .runtime import Daemon
from .tap import TapHub


def main_process(config: Config, signals: bool = True) -> Daemon:
    """The process ``connector run`` starts: sources and the ingress; sinks here or in a child.

    The components are built first (building opens nothing: a config error is reported before
    anything else), then the buffer is claimed and the port bound, before anything starts: a
    second daemon on the same buffer, or a port in use, is one clear error. ``signals=False``:
    only ``Daemon.stop`` stops it (it runs inside another program, a test).
    """
    sources = build_sources(config)
    sinks = build_sinks(config)  # in a delivery process too: refuse what it would refuse, before it starts
    buffer = config.buffer.build(config.directory)
    buffer.claim()
    listener = listen(config.server)
    taps = TapHub()
    delivery: LocalDelivery | RemoteDelivery
    if config.delivery_process:
        delivery = RemoteDelivery(config.path, list(config.sinks), buffer, config.service.shutdown_grace_seconds)
    else:
        delivery = LocalDelivery(buffer, sinks, taps)
    ingest = Ingest(config, buffer, sources, delivery, taps, listener)
    announce = {"listen": f"http://{config.server.host}:{config.server.port}",
                "webhooks": {s.name: s.path for s in sources.webhook}, "sinks": list(config.sinks),
                "buffer": type(buffer).__name__}
    return Daemon(config, buffer, [ingest, delivery], delivery, taps, announce, signals=signals)


def delivery_process(config: Config, control_socket: str, main_pid: int) -> Daemon:
    """The second process: the sink pipelines on the main process's SQLite file."""
    from .control import ControlServer

    buffer = config.buffer.build(config.directory, appended_elsewhere=True)  # type: ignore[call-arg]
    taps = TapHub()
    delivery = LocalDelivery(buffer, build_sinks(config), taps, READ_BATCH_ALONE)
    control = ControlServer(control_socket, delivery, taps)
    watch = MainProcessWatch(main_pid, lambda: publish_states(buffer, delivery, STATE_SECONDS))
    return Daemon(config, buffer, [delivery, control, watch], delivery, taps, {"sinks": list(config.sinks)},
                  ignore_sigint=True)
