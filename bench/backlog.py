"""Backlog: peak RSS with 1,000,000 records waiting for a stopped sink, then how fast they drain.

1. Stores 1,000,000 records in the sqlite buffer, then runs the daemon with a Segment sink whose
   endpoint refuses connections (the sink retries, nothing is acknowledged) while posts go on.
2. Restarts with the Segment sink replaced by a file sink that drains the backlog.
Prints peak RSS of each run and the drain rate.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path

import anyio

from common import peak_rss_mib, start_daemon, table
from connector.buffer.base import NewRecord
from connector.buffer.sqlite import SqliteBuffer
from connector.testing import DaemonProcess, free_port, wait_until

STOPPED = """
[server]
port = {port}

[sources.events]
type = "webhook"
path = "/in"

[sinks.segment]
type = "segment"
inputs = ["events"]
write_key = "bench"
endpoint = "http://127.0.0.1:%d"
retry_max_seconds = 1.0
"""

DRAIN = """
[server]
port = {port}

[sources.events]
type = "webhook"
path = "/in"

[sinks.segment]
type = "file"
inputs = ["events"]
path = "out/events.ndjson"
"""


async def fill(path: Path, count: int) -> None:
    buffer = SqliteBuffer(str(path), max_bytes=1 << 34)
    await buffer.open(["segment"])
    chunk = 10_000
    for start in range(0, count, chunk):
        await buffer.append([NewRecord(f"events-{i}", "events", time.time(),
                                       json.dumps({"type": "track", "userId": f"u{i}", "event": "Backlog",
                                                   "properties": {"i": i}}).encode())
                             for i in range(start, start + chunk)])
    await buffer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--hold-seconds", type=float, default=15)
    args = parser.parse_args()
    daemon = start_daemon(STOPPED % free_port())
    daemon.stop()
    db = daemon.directory / "data" / "connector.db"
    started = time.perf_counter()
    anyio.run(fill, db, args.records)
    fill_rate = args.records / (time.perf_counter() - started)

    stopped = DaemonProcess(daemon.directory, STOPPED % free_port()).start()
    deadline = time.monotonic() + args.hold_seconds
    posted = 0
    while time.monotonic() < deadline:
        assert stopped.post("/in", json.dumps({"type": "track", "userId": "late", "n": posted})).status_code == 200
        posted += 1
        time.sleep(0.005)
    rss_stopped = peak_rss_mib(stopped.process.pid)
    stopped.stop()

    draining = DaemonProcess(daemon.directory, DRAIN).start()
    out = daemon.directory / "out" / "events.ndjson"
    total = args.records + posted
    started = time.perf_counter()

    def drained() -> bool:
        with sqlite3.connect(db) as conn:
            (cursor,) = conn.execute("SELECT seq FROM cursors WHERE sink = 'segment'").fetchone() or (0,)
        return cursor >= total

    wait_until(drained, timeout=600, interval=0.5)
    drain_seconds = time.perf_counter() - started
    rss_drain = peak_rss_mib(draining.process.pid)
    draining.stop()
    lines = sum(1 for _ in out.open("rb"))
    print(table(["phase", "records", "rec/s", "peak RSS MiB"], [
        ["fill the buffer (direct appends)", args.records, fill_rate, float("nan")],
        ["sink stopped, posts go on", total, posted / args.hold_seconds, rss_stopped],
        ["file sink drains the backlog", lines, lines / drain_seconds, rss_drain],
    ]))


if __name__ == "__main__":
    main()
