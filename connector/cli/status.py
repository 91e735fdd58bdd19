"""``connector status`` and ``connector tap``: read a running daemon, or the buffer when stopped."""

from __future__ import annotations

import datetime
import sys
from typing import Any

import httpx

from ..admin_client import admin_url, check_same_buffer, client_options, refused
from ..config import Config
from ..errors import ConnectorError


async def show_status(config: Config) -> int:
    """Print one screen of delivery state."""
    try:
        async with httpx.AsyncClient(timeout=5, **client_options(config)) as client:
            response = await client.get(admin_url(config, "/status"))
        if error := refused(config, response):
            raise error
        status = response.json()
        check_same_buffer(config, status)
    except httpx.TransportError:
        status = await _stopped_status(config)
    ready = {True: "   webhooks: accepted", False: "   webhooks: REFUSED (503)"}.get(status.get("ready"), "")
    print(f"daemon: {'running' if status['running'] else 'not running'}   "
          f"buffer: {status['buffer']['bytes']:,} bytes{'' if status['buffer']['healthy'] else ' (NOT WRITABLE)'}"
          f"{ready}")
    rows: list[tuple[str, ...]] = [("SINK", "LAG", "DELIVERED", "DEAD LETTERS", "STATE", "LAST ERROR")]
    for name, sink in status["sinks"].items():
        delivered = "-" if sink["delivered"] is None else f"{int(sink['delivered']):,}"
        last_error = "-"
        if sink.get("stalled"):
            last_error = sink["stalled"]
        elif sink["last_error"]:
            last_error = f"{when(sink['last_error_at'])} {sink['last_error']}"
        rows.append((name, f"{sink['lag']:,}", delivered, f"{int(sink['dead_letters']):,}",
                     "paused" if sink["paused"] else "STALLED" if sink.get("stalled") else "ok", last_error))
    _print_table(rows)
    webhooks: list[tuple[str, ...]] = [("SOURCE", "RECEIVED", "LAST TEST DELIVERY", "LAST REFUSED")]
    polling: list[tuple[str, ...]] = [("POLLING SOURCE", "STORED SINCE START", "STATE", "LAST POLL", "CURSOR")]
    for name, source in status.get("sources", {}).items():
        if "paused" in source:
            polling.append(_polling_row(name, source))
            continue
        last = source.get("last_refused")
        webhooks.append((name, f"{source['received']:,}", when(source["last_test_delivery"]),
                         "-" if last is None else f"{when(last['at'])} {last['status']} from {last['client'] or '?'}: "
                                                  f"{last['reason']} ({len(source['refusals'])} recent)"))
    for table in (webhooks, polling):
        if len(table) > 1:
            print()
            _print_table(table)
    return 0


def _polling_row(name: str, source: dict[str, Any]) -> tuple[str, ...]:
    """A polling source: records stored, paused or not, its last poll's outcome, its checkpoint."""
    outcome = source.get("last_outcome") or {}
    if not outcome:
        last = "none yet"
    elif outcome.get("error") is not None:
        last = f"{when(outcome['at'])} FAILED {outcome['error']}"
    else:
        last = f"{when(outcome['at'])} stored {outcome.get('stored', 0):,}"
    state = "polling" if source["paused"] is None else f"PAUSED {source['paused']}"
    cursor = source.get("cursor")
    return name, f"{source['received']:,}", state, last, "- (first run)" if cursor is None else cursor


def _print_table(rows: list[tuple[str, ...]]) -> None:
    """Aligned columns; the last one runs free."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


async def _stopped_status(config: Config) -> dict[str, Any]:
    buffer = config.buffer.build(config.directory)
    if not buffer.durable:
        raise ConnectorError(f"the daemon's admin listener does not answer at {admin_url(config, '')} and a "
                             f"{type(config.buffer).__struct_config__.tag} buffer keeps nothing")
    await buffer.open(list(config.sinks))
    try:
        lag = buffer.lag()
        letters = await buffer.dead_letters()
        sinks = {}
        for name in config.sinks:
            mine = [d for d in letters if d.sink == name]
            last = mine[-1] if mine else None
            sinks[name] = {"lag": lag.get(name, 0), "delivered": None, "dead_letters": len(mine), "paused": None,
                           "last_error": last.reason if last else None,
                           "last_error_at": last.failed_at if last else None}
        return {"running": False, "buffer": {"bytes": buffer.stored_bytes, "healthy": True}, "sinks": sinks}
    finally:
        await buffer.close()


def stream_tap(config: Config, component: str | None) -> int:
    """Copy the daemon's tap to stdout until interrupted or the daemon stops."""
    params = {"component": component} if component else {}
    try:
        with httpx.stream("GET", admin_url(config, "/tap"), params=params, timeout=None,
                          **client_options(config)) as response:
            if response.status_code != 200:
                response.read()
                raise refused(config, response) or ConnectorError(f"tap: the daemon answered {response.status_code}")
            for line in response.iter_lines():
                if line:
                    print(line, flush=True)
    except httpx.TransportError as exc:
        raise ConnectorError(f"tap: cannot reach the daemon at {admin_url(config, '/tap')}: {exc}") from None
    except BrokenPipeError:
        sys.stderr.close()
    return 0


def when(timestamp: float | None) -> str:
    """A Unix time as ISO 8601 UTC to the second ("-" for None)."""
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")
