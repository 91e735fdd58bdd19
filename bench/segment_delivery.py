"""Segment delivery: 200,000 mapped messages from the buffer to a fast fake Segment.

Beside Segment's own analytics-python sending the same number of tracks to the same fake in the
same run (its queue made large enough to drop nothing: its best case). connector's messages come
from 100,000 Jebbit experiences stored in the sqlite buffer, mapped to an identify and a track each;
its CPU a delivery (from /proc, start-up included) is the delivery side of ``whole_path.py``'s.
"""

from __future__ import annotations

import argparse
import time

import anyio

from common import LOCAL, cpu_seconds, family, peak_rss_mib, start_daemon, start_fake_segment, table
from connector.buffer.base import NewRecord
from connector.buffer.sqlite import SqliteBuffer
from connector.ids import canonical, record_id
from connector.testing import DaemonProcess
from connector_jebbit.schema import Experience

CONFIG = """
[server]
port = {port}

[sources.jebbit]
type = "jebbit"
shared_secret = "bench"

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[sinks.segment]
type = "segment"
inputs = ["jebbit_segment"]
write_key = "bench-key"
endpoint = "%s"
"""


def experience(i: int) -> Experience:
    return Experience(data={"email": f"user{i}@example.com", "session_id": f"s{i}", "campaign_id": "c1",
                            "campaign_name": "Quiz", "channel": "web", "experience_date": "2026-11-24 10:00:00",
                            "opt_in": "true", "favorite_color": "blue", "age_group": "25-34"})


async def fill(path: str, experiences: int) -> None:
    buffer = SqliteBuffer(path)
    await buffer.open(["segment"])
    for start in range(0, experiences, 10_000):
        rows = []
        for i in range(start, min(start + 10_000, experiences)):
            body = canonical(experience(i))
            rows.append(NewRecord(record_id("jebbit", body), "jebbit", time.time(), body))
        await buffer.append(rows)
    await buffer.close()


def stats(url: str) -> dict:
    return LOCAL.get(url + "/stats").json()


def wait_for(url: str, target: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while stats(url)["distinct"] < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {stats(url)} of {target}")
        time.sleep(0.02)
    return time.perf_counter()


def run_peer(url: str, messages: int) -> tuple[float, int]:
    from segment.analytics.client import Client

    before = stats(url)["distinct"]
    client = Client("bench-key", host=url, max_queue_size=messages + 1, upload_size=100, gzip=True)
    started = time.perf_counter()
    dropped = 0
    for i in range(messages):
        ok, _ = client.track(user_id=f"user{i}", event="Survey Completed",
                             properties={"surveyId": "c1", "questions": {"favorite_color": "blue"}})
        dropped += not ok
    client.flush()
    finished = wait_for(url, before + messages - dropped)
    client.join()
    return messages / (finished - started), dropped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    fake, url = start_fake_segment()
    try:
        peer_rate, peer_dropped = run_peer(url, args.messages)
        config = CONFIG % url
        seed = start_daemon(config)
        seed.stop()
        anyio.run(fill, str(seed.directory / "data" / "connector.db"), args.messages // 2)
        before = stats(url)["distinct"]
        daemon = DaemonProcess(seed.directory, config)
        started = time.perf_counter()
        daemon.start()
        processes = family(daemon.process.pid)
        cpu_before = cpu_seconds(processes)
        finished = wait_for(url, before + args.messages)
        ours = args.messages / (finished - started)
        cpu_us = (cpu_seconds(processes) - cpu_before) * 1e6 / (args.messages / 2)
        rss = peak_rss_mib(daemon.process.pid)
        daemon.stop()
    finally:
        fake.terminate()
        fake.wait()
    print(table(["sender", "messages", "messages/s", "dropped", "peak RSS MiB"], [
        ["segment-analytics-python (in memory)", args.messages, peer_rate, peer_dropped, float("nan")],
        ["connector (sqlite buffer -> mapper -> segment)", args.messages, ours, 0, rss],
    ]))
    print(f"ratio connector / analytics-python: {ours / peer_rate:.1f}x; connector's CPU a delivery (an identify and "
          f"a track), its processes from start to the last message: {cpu_us:.1f} µs")


if __name__ == "__main__":
    main()
