"""Durable ingest: webhook records/s into the buffer at 1, 16 and 64 concurrent posters.

For the sqlite buffer and the nats buffer (JetStream at --nats-url), beside the trivial ASGI app
(the ceiling) under the same HTTP server, in the same run. A file sink reads the buffer
meanwhile, as in production. Prints a table; --seconds sets each run.
"""

from __future__ import annotations

import argparse
import uuid

from common import BENCH, metric, peak_rss_mib, start_daemon, start_trivial, table, wrk

CONFIG = """
[server]
port = {port}

[buffer]
%s

[sources.events]
type = "webhook"
path = "/in"

[sinks.archive]
type = "file"
inputs = ["events"]
path = "out/events.ndjson"
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--buffers", default="sqlite,nats")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    args = parser.parse_args()
    script = BENCH / "counter_post.lua"
    buffers = {"sqlite": 'type = "sqlite"',
               "nats": f'type = "nats"\nurl = "{args.nats_url}"\nstream = "bench_{uuid.uuid4().hex[:8]}"'}
    trivial, port = start_trivial()
    rows = []
    try:
        for name in args.buffers.split(","):
            daemon = start_daemon(CONFIG % buffers[name])
            try:
                for connections in (1, 16, 64):
                    ceiling = wrk(f"http://127.0.0.1:{port}/in", script, connections, args.seconds)
                    commits_before = metric(daemon.admin_url, "connector_buffer_commits_total")
                    ours = wrk(daemon.base_url + "/in", script, connections, args.seconds)
                    commits = metric(daemon.admin_url, "connector_buffer_commits_total") - commits_before
                    rows.append([name, connections, ours["rps"], ours["requests"] - ours["non2xx"],
                                 int(commits) or "-", ours["p50_ms"], ours["p99_ms"], ceiling["rps"],
                                 ours["rps"] / ceiling["rps"], ours["non2xx"] + ours["errors"],
                                 peak_rss_mib(daemon.process.pid)])
            finally:
                daemon.stop()
    finally:
        trivial.terminate()
        trivial.wait()
    print(table(["buffer", "posters", "durable rec/s", "stored", "commits", "p50 ms", "p99 ms",
                 "ceiling req/s", "ratio", "failed", "peak RSS MiB"], rows))


if __name__ == "__main__":
    main()
