"""``connector jebbit test`` and ``backfill --wait``: ask Jebbit to send, then watch the running daemon.

The daemon's ``/status`` says, per webhook source, when it last verified a test delivery, when
it last refused one (status and reason, never the body), and how many records it stored. So a
test ends in one of four diagnoses: verified, the daemon is not running, the daemon refused
Jebbit's delivery (and why), or nothing arrived (the endpoint does not reach this daemon).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import connector

from .api import JebbitAPI
from .provision import jebbit_source, source_config
from ..source import JebbitSourceConfig

WAITING_STATES = ("received", "processing")  # Jebbit's documented states of a backfill still running
FAILURE_WORDS = ("fail", "error", "cancel", "abort", "reject")
POLL_SECONDS = 0.25


def test(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    config = ctx.load_config(args.config)
    integration = jebbit.integration(args.id)
    endpoint = (integration.attributes and integration.attributes.endpoint) or ""
    source = _source_for(ctx, config, args.source, endpoint, args.id)
    took = verify_test_delivery(ctx, config, jebbit, args.id, source, endpoint, args.timeout, args.config)
    print(f"verified: sources.{source} checked the signature of Jebbit's test delivery to {endpoint} "
          f"({took:.1f} s after the request)")
    return 0


def verify_test_delivery(ctx: connector.CommandContext, config: connector.ConfigView, jebbit: JebbitAPI,
                         integration: str, source: str, endpoint: str, timeout: float, config_path: str) -> float:
    """Ask Jebbit for ``integration``'s test delivery and wait until the running daemon's ``source``
    verified it: the seconds it took; a ``CommandError`` with the diagnosis otherwise."""
    status_url = ctx.daemon_url(config, "/status")
    if ctx.daemon_status(config) is None:
        raise connector.CommandError(f"the daemon is not running at {status_url}: start it "
                                     f"(connector run -c {config_path} --env-file FILE) and test again")
    requested = time.time()
    jebbit.send_test(integration)
    deadline = time.monotonic() + timeout
    while True:
        status = ctx.daemon_status(config)
        if status is None:
            raise connector.CommandError(f"the daemon at {status_url} stopped answering while waiting")
        activity = status.get("sources", {}).get(source, {})
        verified = activity.get("last_test_delivery")
        if verified is not None and verified >= requested:
            return float(verified - requested)
        refused = activity.get("last_refused")
        if refused is not None and refused["at"] >= requested:
            raise connector.CommandError(_refusal(refused, config_path))
        if time.monotonic() > deadline:
            raise connector.CommandError(
                f"nothing arrived from Jebbit within {timeout:g} s: integration {integration} posts to {endpoint}, "
                f"which does not reach the daemon behind {status_url} (check the public URL, DNS and the proxy "
                "or tunnel in front of the daemon)")
        time.sleep(POLL_SECONDS)


def backfill(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    job = jebbit.create_backfill(args.id)
    state = _state(job)
    print(f"backfill {job.id} of integration {args.id}: {state}")
    if not args.wait:
        print(f"follow it: connector jebbit backfills show {job.id}")
        return 0
    try:
        from tqdm import tqdm  # a progress line for this one command (connector[jebbit-cli])
    except ImportError:
        raise connector.CommandError("--wait draws a progress line with tqdm, which is not installed: "
                                     "pip install 'connector[jebbit-cli]' (or run it without --wait)") from None

    counter = _ReceivedCounter(ctx, args, jebbit)
    started = time.monotonic()
    shown_state = state
    with tqdm(desc=f"backfill {job.id}: {state}", unit=" records", total=None, disable=None, file=sys.stderr,
              bar_format="{desc}, {n_fmt}{unit} received [{elapsed}]") as progress:
        while state in WAITING_STATES:
            time.sleep(args.poll_seconds)
            state = _state(jebbit.backfill(job.id))
            progress.update(counter.received() - progress.n)
            progress.set_description_str(f"backfill {job.id}: {state}")
            if progress.disable and state != shown_state:  # not a terminal: one line per change
                print(f"backfill {job.id}: {state} ({time.monotonic() - started:.0f} s)", flush=True)
                shown_state = state
    time.sleep(args.poll_seconds)  # the last sessions' answers reach the daemon's count
    received = counter.describe()
    ended = f"backfill {job.id} ended {state} after {time.monotonic() - started:.0f} s{received}"
    if any(word in state.lower() for word in FAILURE_WORDS):
        raise connector.CommandError(ended)
    print(ended)
    return 0


class _ReceivedCounter:
    """Records the running daemon stored from the backfilled source since the backfill started."""

    def __init__(self, ctx: connector.CommandContext, args: argparse.Namespace, jebbit: JebbitAPI):
        self.ctx = ctx
        self.config: connector.ConfigView | None = None
        self.source = ""
        self.start = 0
        if args.config is None:
            return
        self.config = ctx.load_config(args.config)
        endpoint = (jebbit.integration(args.id).attributes or _NoAttributes).endpoint or ""
        self.source = _source_for(ctx, self.config, args.source, endpoint, args.id)
        self.start = self._now() or 0

    def _now(self) -> int | None:
        status = self.ctx.daemon_status(self.config) if self.config is not None else None
        if status is None:
            return None
        return int(status.get("sources", {}).get(self.source, {}).get("received", 0))

    def received(self) -> int:
        now = self._now()
        return 0 if now is None else max(0, now - self.start)

    def describe(self) -> str:
        if self.config is None:
            return ""
        if self._now() is None:
            return f" (the daemon at {self.ctx.daemon_url(self.config, '')} is not running: nothing was counted)"
        return f"; the daemon stored {self.received()} record(s) from sources.{self.source} meanwhile"


class _NoAttributes:
    endpoint = None


def _source_for(ctx: connector.CommandContext, config: connector.ConfigView, name: str | None, endpoint: str,
                integration: str) -> str:
    """The jebbit source the integration's endpoint reaches (named, by path, or the only one)."""
    import httpx  # here: see api.py

    path = httpx.URL(endpoint).path if endpoint else ""
    by_path = [n for n, c in config.sources.items() if isinstance(c, JebbitSourceConfig) and c.path == path]
    if name is None and len(by_path) == 1:
        return by_path[0]
    source = jebbit_source(config, name)
    listening = source_config(config, source).path
    if listening != path:
        raise connector.CommandError(
            f"integration {integration} posts to {endpoint or 'no endpoint'}, but sources.{source} listens on "
            f"{listening}: run `connector jebbit setup` again")
    return source


def _state(job: Any) -> str:
    return str((job.attributes and job.attributes.status) or "unknown")


def _refusal(refused: dict[str, Any], config: str) -> str:
    answer = f"{refused['status']} {refused['reason']}"
    if refused["status"] == 401:
        return (f"the daemon refused Jebbit's test delivery ({answer}): it holds another shared secret than "
                f"the integration's; restart the daemon with the env file setup wrote "
                f"(connector run -c {config} --env-file FILE)")
    return f"the daemon refused Jebbit's test delivery ({answer})"
