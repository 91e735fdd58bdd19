"""What an open console costs the daemon: CPU of the default daemon's processes (both, from /proc)
over --seconds with no console, then with the console's overview open in a headless Chromium
(polling /status every 2 s and /rates every 5 s, as it does for an operator), alternated --rounds
times. Idle daemon, so the console's share is not lost in a load's noise: a load's figures are in
``whole_path.py --console``.
"""

from __future__ import annotations

import argparse
import time

from common import cpu_seconds, family, start_daemon, table
from whole_path import open_console

CONFIG = """
[server]
port = {port}

[buffer]
type = "sqlite"

[sources.jebbit]
type = "jebbit"
shared_secret = "bench-shared-secret"

[mappers.jebbit_segment]
type = "jebbit_to_segment"
inputs = ["jebbit"]

[sinks.archive]
type = "file"
inputs = ["jebbit_segment"]
path = "events.ndjson"
"""


def cpu_ms_per_second(pids: list[int], seconds: float) -> float:
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return (cpu_seconds(pids) - before) * 1000 / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    daemon = start_daemon(CONFIG)
    try:
        time.sleep(2)  # the delivery process is up
        pids = family(daemon.process.pid)
        rows = []
        for _ in range(args.rounds):
            rows.append(["console closed", cpu_ms_per_second(pids, args.seconds)])
            close = open_console(daemon.admin_url)
            try:
                rows.append(["console open", cpu_ms_per_second(pids, args.seconds)])
            finally:
                close()
        print(f"the default daemon ({len(pids)} processes), idle, {args.seconds:.0f} s a row")
        print(table(["state", "daemon CPU ms/s"], rows))
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
