"""Signed Jebbit load for the reliability suites: posters that remember what was acknowledged."""

from __future__ import annotations

import json
import threading
import time

import httpx

from connector.ids import canonical, message_id, record_id
from connector_jebbit.signature import sign
from connector_jebbit.schema import delivery_items

SECRET = "reliability-shared-secret"
WRITE_KEY = "test-write-key"

CONFIG = """
[service]
shutdown_grace_seconds = %(grace)s

[server]
port = {port}

[buffer]
path = "data/connector.db"
max_bytes = %(max_bytes)s
%(buffer_extra)s

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
timeout = 1.0
%(sink_extra)s
"""


def config(grace: float = 10, max_bytes: int = 1 << 30, sink_extra: str = "", buffer_extra: str = "") -> str:
    return CONFIG % {"grace": grace, "max_bytes": max_bytes, "sink_extra": sink_extra, "buffer_extra": buffer_extra}


def env(segment_url: str) -> dict[str, str]:
    return {"JEBBIT_SHARED_SECRET": SECRET, "SEGMENT_WRITE_KEY": WRITE_KEY, "SEGMENT_ENDPOINT": segment_url}


def body(poster: int, n: int) -> bytes:
    return json.dumps([{"data": {"email": f"p{poster}-{n}@example.com", "session_id": f"{poster}-{n}",
                                 "campaign_id": "c1", "favorite_color": "blue"}}]).encode()


def message_ids(bodies: list[bytes]) -> set[str]:
    """The identify and track ids connector gives the experiences in ``bodies``."""
    ids = set()
    for raw in bodies:
        for experience in delivery_items(raw):
            rid = record_id("jebbit", canonical(experience))
            ids.update(message_id(rid, "jebbit_segment", i) for i in (0, 1))
    return ids


class Load:
    """``posters`` threads posting signed, distinct experiences until stopped."""

    def __init__(self, url: str, posters: int = 16, pause: float = 0.0, timeout: float = 10.0, first_poster: int = 0):
        self.url = url
        self.first_poster = first_poster  # several loads at once: each its own posters, its own experiences
        self.timeout = timeout
        self.posters = posters
        self.pause = pause
        self.acknowledged: list[bytes] = []
        self.sent = 0
        self.refused = 0
        self.timed_out = 0  # requests with no answer at all within the client's timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> Load:
        self._threads = [threading.Thread(target=self._post, args=(self.first_poster + i,))
                         for i in range(self.posters)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _post(self, poster: int) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            n = 0
            while not self._stop.is_set():
                payload = body(poster, n)
                n += 1
                headers = {"content-type": "application/json", "x-jebbit-signature": sign(SECRET, payload)}
                timed_out = False
                try:
                    response = client.post(self.url, content=payload, headers=headers)
                except httpx.TimeoutException:
                    response, timed_out = None, True
                except httpx.TransportError:
                    response = None
                with self._lock:
                    self.sent += 1
                    self.timed_out += timed_out
                    if response is not None and response.status_code == 200:
                        self.acknowledged.append(payload)
                    else:
                        self.refused += 1
                if response is None or response.status_code != 200:
                    time.sleep(0.05)
                elif self.pause:
                    time.sleep(self.pause)


def report(name: str, load: Load, fake) -> str:
    """One line of figures for the closing note; printed with -s."""
    wanted = message_ids(load.acknowledged)
    delivered = fake.message_ids()
    line = (f"{name}: sent {load.sent}, acknowledged {len(load.acknowledged)}, messages expected {len(wanted)}, "
            f"delivered {len(delivered & wanted)}, lost {len(wanted - delivered)}, "
            f"duplicates {len(fake.messages) - len(delivered)}")
    print(line)
    return line
