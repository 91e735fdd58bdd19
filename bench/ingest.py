"""Durable ingest: webhook records/s into the sqlite buffer at 1, 16 and 64 concurrent posters.

Beside the trivial ASGI app (the ceiling) under the same HTTP server, in the same run. A file
sink reads the buffer meanwhile, as in production. Prints a table; --seconds sets each run.
"""

from __future__ import annotations

import argparse

from common import BENCH, metric, peak_rss_mib, start_daemon, start_trivial, table, wrk

CONFIG = """
[server]
port = {port}

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
    args = parser.parse_args()
    script = BENCH / "counter_post.lua"
    trivial, port = start_trivial()
    daemon = start_daemon(CONFIG)
    rows = []
    try:
        for connections in (1, 16, 64):
            ceiling = wrk(f"http://127.0.0.1:{port}/in", script, connections, args.seconds)
            commits_before = metric(daemon.base_url, "connector_buffer_commits_total")
            ours = wrk(daemon.base_url + "/in", script, connections, args.seconds)
            commits = metric(daemon.base_url, "connector_buffer_commits_total") - commits_before
            rows.append([connections, ours["rps"], ours["requests"] - ours["non2xx"], int(commits),
                         ours["requests"] / max(commits, 1), ours["p50_ms"], ours["p99_ms"], ceiling["rps"],
                         ours["rps"] / ceiling["rps"], ours["non2xx"] + ours["errors"]])
        rss = peak_rss_mib(daemon.process.pid)
    finally:
        daemon.stop()
        trivial.terminate()
        trivial.wait()
    print(table(["posters", "durable rec/s", "stored", "commits", "rec/commit", "p50 ms", "p99 ms",
                 "ceiling req/s", "ratio", "failed"], rows))
    print(f"connector peak RSS: {rss:.1f} MiB")


if __name__ == "__main__":
    main()
