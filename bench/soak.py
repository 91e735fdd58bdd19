"""Soak: connector (sqlite buffer, Jebbit -> Segment fake) at about half capacity for --minutes.

Samples the daemon's RSS and open file descriptors (with its delivery process, if any) every 10 s and prints them with their trend:
both must stay flat. Signatures expire after 300 s, so the pre-signed load is renewed every
4 minutes (repeated bodies are fine here: same ids, deduplicated downstream).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import BENCH, family, start_daemon, start_fake_segment, table
from whole_path import CONNECTOR, SECRET, presign


def sample(pid: int) -> tuple[float, int]:
    """RSS (MiB) and open files of ``pid`` and its children (the delivery process)."""
    rss = fds = 0
    for each in family(pid):
        rss += next(int(line.split()[1]) for line in Path(f"/proc/{each}/status").read_text().splitlines()
                    if line.startswith("VmRSS:"))
        fds += len(os.listdir(f"/proc/{each}/fd"))
    return rss / 1024, fds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--delay-ms", type=int, default=6, help="per connection; ~half capacity here")
    parser.add_argument("--one-process", action="store_true",
                        help="delivery_process = false (the default runs the sinks in a second process)")
    args = parser.parse_args()
    fake, fake_url = start_fake_segment()
    buffer = 'type = "sqlite"' + ("\n\n[service]\ndelivery_process = false" if args.one_process else "")
    daemon = start_daemon(CONNECTOR % (buffer, SECRET, fake_url))
    presigned = Path(tempfile.mkdtemp(prefix="connector-soak-")) / "presigned.tsv"
    samples: list[tuple[float, float, int]] = []
    stop = threading.Event()

    def watch() -> None:
        started = time.monotonic()
        while not stop.wait(10):
            samples.append((time.monotonic() - started, *sample(daemon.process.pid)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    deadline = time.monotonic() + args.minutes * 60
    requests = 0
    try:
        while (left := deadline - time.monotonic()) > 1:
            presign(presigned, 100_000)
            seconds = int(min(240, left))
            out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "-s", str(BENCH / "presigned_post.lua"),
                                  daemon.base_url + "/webhooks/jebbit"], capture_output=True, text=True,
                                 env={**os.environ, "PRESIGNED": str(presigned), "WRK_THREADS": "2",
                                      "DELAY_MS": str(args.delay_ms)}).stdout
            requests += int(out.split(" requests in")[0].split()[-1])
    finally:
        stop.set()
        watcher.join()
        daemon.stop()
        fake.terminate()
        fake.wait()
    rows = [[f"{t:.0f}", rss, fds] for t, rss, fds in samples[:: max(1, len(samples) // 12)]]
    print(table(["seconds", "RSS MiB", "open fds"], rows))
    first, last = samples[len(samples) // 10], samples[-1]
    print(f"{requests:,} requests in {args.minutes} min ({requests / (args.minutes * 60):,.0f}/s); "
          f"RSS {first[1]:.1f} -> {last[1]:.1f} MiB (max {max(s[1] for s in samples):.1f}); "
          f"open fds {first[2]} -> {last[2]} (max {max(s[2] for s in samples)})")


if __name__ == "__main__":
    main()
