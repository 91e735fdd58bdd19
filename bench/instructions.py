"""Instructions a request (ingest side) or a delivery (delivery side), counted by callgrind: the
difference between a run of 2N and a run of N, so start-up cancels out. Counts repeat to the
hundred run to run, where seconds on this shared machine swing by 10-30 %: compare changes with
these. Needs valgrind (on every machine here). Each side takes 1-2 minutes.

    python instructions.py ingest [--requests 2000]      # ingress_cpu.py --protocol, all threads
    python instructions.py delivery [--deliveries 10000] # delivery_cpu.py, this process only

The ingest side's count includes ingress_cpu.py's own signing of each request (the same in every
version), so it is for comparing, not an absolute cost.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).parent


def collected(args: list[str]) -> int:
    """Instructions callgrind counted for ``python args`` (the process only, not its children)."""
    with tempfile.TemporaryDirectory() as directory:
        run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={directory}/out",
                              sys.executable, *args], cwd=BENCH, capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", run.stderr).group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=["ingest", "delivery"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--deliveries", type=int, default=10_000)
    args = parser.parse_args()
    if args.side == "ingest":
        n, unit = args.requests, "a request"
        command = ["ingress_cpu.py", "--protocol", "--requests"]
    else:
        n, unit = args.deliveries, "a delivery"
        command = ["delivery_cpu.py", "--deliveries"]
    once, twice = collected([*command, str(n)]), collected([*command, str(2 * n)])
    print(f"{(twice - once) / n:,.0f} instructions {unit} ({args.side} side)")


if __name__ == "__main__":
    main()
