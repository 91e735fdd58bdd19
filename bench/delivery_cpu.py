"""CPU a delivery of connector's delivery side, in this one process: ``--deliveries`` Jebbit
experiences stored in a sqlite buffer beforehand (by another process), then read, mapped to an identify and a track,
encoded, gzipped and posted to ``fake_segment_fast.py`` (another process) by the daemon running
inside this process (``LocalDaemon``, ``delivery_process = false``) until every message arrived.
Under ``valgrind --tool=callgrind`` the difference between two sizes is the instructions a
delivery, which repeat run to run on this noisy machine where seconds do not.

    python delivery_cpu.py [--deliveries 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import BENCH, start_fake_segment
from connector.testing import LocalDaemon
from segment_delivery import CONFIG


def arrived(url: str) -> int:
    """Distinct messages the fake has (urllib: an httpx client a poll would load TLS certificates)."""
    with urllib.request.urlopen(url + "/stats") as answer:
        return json.load(answer)["distinct"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=20_000)
    args = parser.parse_args()
    fake, url = start_fake_segment()
    directory = Path(tempfile.mkdtemp(prefix="connector-bench-"))
    try:
        config = (CONFIG % url) + "\n[service]\ndelivery_process = false\n"
        subprocess.run([sys.executable, "-c", "import sys, anyio, segment_delivery; "  # not traced by callgrind
                        "anyio.run(segment_delivery.fill, sys.argv[1], int(sys.argv[2]))",
                        str(directory / "data" / "connector.db"), str(args.deliveries)], cwd=BENCH, check=True)
        cpu = time.process_time()
        daemon = LocalDaemon(directory, config).start()
        while arrived(url) < 2 * args.deliveries:
            time.sleep(0.5)  # few polls: under callgrind they would count
        daemon.stop()
        cpu = time.process_time() - cpu
    finally:
        fake.terminate()
        fake.wait()
    print(f"{args.deliveries:,} deliveries: {cpu / args.deliveries * 1e6:.1f} µs CPU a delivery "
          "(start-up and stop included)")


if __name__ == "__main__":
    main()
