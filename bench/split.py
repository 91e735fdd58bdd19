"""Where the whole path's CPU goes: connector as configured by default (ingest and delivery
processes) under ``whole_path.py``'s load (pre-signed Jebbit deliveries, wrk, 64 connections,
Segment replaced by ``fake_segment_fast.py``).

Prints CPU µs a delivery of each process and thread (from /proc), of wrk and of the fake, and
records a commit. ``--profile ingest|delivery`` records that process with py-spy (samples of the
thread holding the GIL) into ``--out`` as folded stacks, for ``top_frames.py``.

    python split.py [--seconds 10] [--one-process] [--profile ingest --out ingest.folded]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import BENCH, cpu_seconds, metric, start_daemon, start_fake_segment, wrk
from connector.testing import child_pids
from whole_path import CONNECTOR, SECRET, delivered, presign, wait_drained


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` so far."""
    tids = [int(p.name) for p in Path(f"/proc/{pid}/task").iterdir()]
    return {tid: cpu_seconds_of(f"/proc/{pid}/task/{tid}/stat") for tid in tids}


def cpu_seconds_of(stat: str) -> float:
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> list[int]:
    """/proc/stat's first line: user, nice, system, idle, iowait, irq, softirq, steal (ticks, all cores)."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def sample_lag(admin_url: str, fake_url: str, began: float, stop: threading.Event, lines: list[str]) -> None:
    """Every second: deliveries answered, deliveries arrived at the fake, and the difference (wrk's
    load starts about a second in: it reads its requests first)."""
    while not stop.wait(1.0):
        answered = metric(admin_url, "connector_http_requests_total")
        arrived = delivered(fake_url) / 2
        lines.append(f"  {time.perf_counter() - began:4.1f} s: answered {answered:9,.0f}, arrived {arrived:9,.0f}, "
                     f"behind {answered - arrived:7,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=250_000)
    parser.add_argument("--one-process", action="store_true", help="delivery_process = false")
    parser.add_argument("--profile", choices=["ingest", "delivery"])
    parser.add_argument("--out", default="profile.folded")
    args = parser.parse_args()
    presigned = Path(tempfile.mkdtemp(prefix="connector-bench-")) / "presigned.tsv"
    presign(presigned, args.requests)
    env = {"PRESIGNED": str(presigned), "WRK_THREADS": "2"}
    fake, fake_url = start_fake_segment()
    buffer = 'type = "sqlite"' + ("\n\n[service]\ndelivery_process = false" if args.one_process else "")
    daemon = start_daemon(CONNECTOR % (buffer, SECRET, fake_url))
    try:
        ingest = daemon.process.pid
        children = child_pids(ingest)
        processes = {"ingest": ingest, **({"delivery": children[0]} if children else {})}
        before = {name: cpu_seconds([pid]) for name, pid in processes.items()}
        threads_before = {name: thread_cpu(pid) for name, pid in processes.items()}
        fake_before = cpu_seconds([fake.pid])
        spy = None
        if args.profile:
            spy = subprocess.Popen(["py-spy", "record", "-p", str(processes[args.profile]), "-d", str(args.seconds),
                                   "-r", "200", "--gil", "-f", "raw", "-o", args.out], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        began = time.perf_counter()
        stop_sampling, lag = threading.Event(), []
        sampler = threading.Thread(target=sample_lag, args=(daemon.admin_url, fake_url, began, stop_sampling, lag))
        sampler.start()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        ticks_before = machine_ticks()
        load = wrk(daemon.base_url + "/webhooks/jebbit", BENCH / "presigned_post.lua", 64, args.seconds, env)
        accepted = load["requests"] - load["non2xx"] - load["errors"]
        ticks = [after - before for after, before in zip(machine_ticks(), ticks_before)]
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_cpu = (usage.ru_utime + usage.ru_stime - children_before.ru_utime - children_before.ru_stime)
        arrived, took = wait_drained(fake_url, 2 * accepted, load["started"])
        stop_sampling.set()
        sampler.join()
        if spy is not None:
            spy.wait()
        print(f"accepted {accepted / args.seconds:,.0f}/s, delivered {arrived / 2 / max(took, args.seconds):,.0f}/s, "
              f"lost {max(0, 2 * accepted - arrived)}, p99 {load['p99_ms']:.1f} ms")
        total = sum(ticks)
        shares = ", ".join(f"{kind} {100 * tick / total:.0f} %" for kind, tick in
                           zip(["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"], ticks) if tick)
        print(f"machine during the load: {shares}")
        print("deliveries answered and arrived at the fake, every second:", *lag, sep="\n")
        for name, pid in processes.items():
            print(f"{name}: {(cpu_seconds([pid]) - before[name]) * 1e6 / accepted:.1f} µs CPU a delivery")
            for tid, seconds in sorted(thread_cpu(pid).items()):
                spent = (seconds - threads_before[name].get(tid, 0.0)) * 1e6 / accepted
                if spent >= 0.5:
                    print(f"  thread {tid}{' (main)' if tid == pid else ''}: {spent:.1f} µs")
        in_daemon = metric(daemon.admin_url, "connector_ack_seconds_sum") / max(
            metric(daemon.admin_url, "connector_ack_seconds_count"), 1)
        print(f"in the daemon, request in to 2xx out: {in_daemon * 1e3:.2f} ms on average; wrk's round trip: "
              f"{64 / max(accepted / args.seconds, 1) * 1e3:.2f} ms (64 connections / rate)")
        commits = metric(daemon.admin_url, "connector_buffer_commits_total")
        print(f"records a commit: {accepted / max(commits, 1):.1f}")
        print(f"wrk: {wrk_cpu * 1e6 / accepted:.1f} µs CPU a delivery")
        print(f"fake segment: {(cpu_seconds([fake.pid]) - fake_before) * 1e6 / accepted:.1f} µs CPU a delivery")
    finally:
        daemon.stop()
        fake.terminate()
        fake.wait()
        presigned.unlink()


if __name__ == "__main__":
    main()
