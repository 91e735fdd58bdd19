"""Where the two cores go in NATS mode: the whole path's load (``whole_path.py``'s pre-signed
Jebbit deliveries, wrk, 64 connections) on the daemon with the nats buffer (one pinned
nats-server, R1), with the CPU seconds of each process over the run: the daemon's, nats-server's,
the fake Segment's and wrk's, per delivery (the daemon's main process apart), and the machine's
idle share; the default (on 2+ cores, sinks in a second process) and one process. The same for
the default sqlite daemon beside it, in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import uuid
from pathlib import Path

from common import (BENCH, cpu_seconds, family, start_daemon, start_fake_segment, start_nats, table, wrk)
from whole_path import CONNECTOR, SECRET, presign, wait_drained


def idle_seconds() -> float:
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    return (int(fields[3]) + int(fields[4])) / os.sysconf("SC_CLK_TCK")


def run(name: str, buffer: str, nats_pid: int | None, seconds: int, env: dict) -> list:
    fake, fake_url = start_fake_segment()
    daemon = start_daemon(CONNECTOR % (buffer, SECRET, fake_url))
    try:
        main_pid = daemon.process.pid
        pids = {"daemon": family(main_pid), "main process": [main_pid], "fake Segment": [fake.pid]}
        if nats_pid is not None:
            pids["nats-server"] = [nats_pid]
        before = {key: cpu_seconds(value) for key, value in pids.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        idle = idle_seconds()
        load = wrk(daemon.base_url + "/webhooks/jebbit", BENCH / "presigned_post.lua", 64, seconds, env)
        idle = idle_seconds() - idle
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = {key: cpu_seconds(value) - before[key] for key, value in pids.items()}
        used["wrk"] = (after_children.ru_utime + after_children.ru_stime) - (children.ru_utime + children.ru_stime)
        accepted = load["requests"] - load["non2xx"] - load["errors"]
        arrived, took = wait_drained(fake_url, 2 * accepted, load["started"])
        deliveries = max(arrived // 2, 1)
        return [name, accepted / seconds, arrived / 2 / max(took, seconds),
                *(used.get(key, 0.0) * 1e6 / deliveries
                  for key in ("daemon", "main process", "nats-server", "fake Segment", "wrk")),
                idle / (os.cpu_count() * seconds)]
    finally:
        daemon.stop()
        fake.terminate()
        fake.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    presigned = Path(tempfile.mkdtemp(prefix="connector-bench-")) / "presigned.tsv"
    presign(presigned, 250_000)
    env = {"PRESIGNED": str(presigned), "WRK_THREADS": "2"}
    nats, nats_url = start_nats()
    try:
        nats_buffer = f'type = "nats"\nurl = "{nats_url}"\nstream = "split_{{}}"'
        rows = [run("sqlite (default)", 'type = "sqlite"', None, args.seconds, env),
                run("nats (default, two processes)", nats_buffer.format(uuid.uuid4().hex[:8]), nats.pid, args.seconds,
                    env),
                run("nats, one process",
                    nats_buffer.format(uuid.uuid4().hex[:8]) + "\n\n[service]\ndelivery_process = false",
                    nats.pid, args.seconds, env)]
    finally:
        nats.terminate()
        nats.wait()
    print(table(["buffer", "accepted/s", "delivered/s", "daemon µs/delivery", "its main process µs", "nats-server µs",
                 "fake Segment µs",
                 "wrk µs", "machine idle"], rows))


if __name__ == "__main__":
    main()
