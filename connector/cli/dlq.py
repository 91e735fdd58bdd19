"""``connector dlq``: list, show, replay and purge dead letters, daemon running or not.

While the daemon runs, through its admin listener (``/dead-letters``); when it is stopped, on
the buffer itself.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from ..admin_client import admin_url, check_same_buffer, client_options, refused
from ..config import Config
from ..errors import CommandError, ConfigError
from ..ingress.admin import DONE
from ..records import DeadLetter, DeadLetterList
from .status import when


async def run_dlq(config: Config, action: str, ids: Sequence[int], everything: bool) -> int:
    """Carry out one ``connector dlq`` action, through the running daemon or on the buffer."""
    if action in ("replay", "purge") and not ids and not everything:
        raise ConfigError(f"dlq {action}: name dead-letter ids, or pass --all")
    try:
        async with httpx.AsyncClient(timeout=30, **client_options(config)) as client:
            letters = await _through_daemon(client, config, action, ids)
    except httpx.ConnectError:  # nothing listens there: the daemon is stopped (not: it answered too slowly)
        letters = await _on_the_buffer(config, action, ids)
    missing = sorted(set(ids) - {letter.id for letter in letters})
    if missing:
        raise CommandError(f"no dead letter with id {', '.join(map(str, missing))} "
                           f"(`connector dlq list -c {config.path}` shows them)")
    return 0


async def _through_daemon(client: httpx.AsyncClient, config: Config, action: str,
                          ids: Sequence[int]) -> list[DeadLetter]:
    status = await client.get(admin_url(config, "/status"))
    if error := refused(config, status):
        raise error
    check_same_buffer(config, status.json())
    response = await client.get(admin_url(config, "/dead-letters"), params={"id": list(ids)})
    if error := refused(config, response):
        raise error
    shown = msgspec.json.decode(response.content, type=DeadLetterList).dead_letters
    letters = [view.letter() for view in shown]
    if action in ("list", "show"):
        _print(letters, action, ids)
    elif not set(ids) - {letter.id for letter in letters}:
        answer = await client.post(admin_url(config, f"/dead-letters/{action}"),
                                   json={"ids": list(ids)} if ids else {"all": True})
        if error := refused(config, answer):
            raise error
        counted: dict[str, Any] = answer.json()
        print(f"{DONE[action]} {counted[DONE[action]]} dead letter(s)")
    return letters


async def _on_the_buffer(config: Config, action: str, ids: Sequence[int]) -> list[DeadLetter]:
    buffer = config.buffer.build(config.directory)
    if not buffer.durable:
        raise ConfigError(f"{config.path}: buffer.type: the daemon does not answer at {admin_url(config, '')}, and "
                          f"a {type(config.buffer).__struct_config__.tag} buffer keeps no dead letters between runs")
    await buffer.open(sinks=[])
    try:
        letters = await buffer.dead_letters(ids)
        if action in ("list", "show"):
            _print(letters, action, ids)
        elif set(ids) - {letter.id for letter in letters}:
            pass  # replay or purge nothing when an id is wrong: the user meant other letters
        elif action == "replay":
            print(f"replayed {await buffer.replay(ids)} dead letter(s)")
        else:
            print(f"purged {await buffer.purge(ids)} dead letter(s)")
    finally:
        await buffer.close()
    return letters


def _print(letters: list[DeadLetter], action: str, ids: Sequence[int]) -> None:
    for letter in letters:
        print(line(letter) if action == "list" else _full(letter))
    if not letters and not ids:
        print("no dead letters", file=sys.stderr)  # on stderr: a script reading stdout gets no line


def line(letter: DeadLetter) -> str:
    """One dead letter on one line, as `connector dlq list` prints it."""
    return (f"{letter.id}\t{letter.sink}\t{letter.record_id}\t{when(letter.failed_at)}\t"
            f"attempts={letter.attempts}\t{letter.reason}")


def _full(letter: DeadLetter) -> str:
    return "\n".join([
        f"id:          {letter.id}",
        f"sink:        {letter.sink}",
        f"record:      {letter.record_id} (source {letter.source})",
        f"received:    {when(letter.received_at)}",
        f"failed:      {when(letter.failed_at)} after {letter.attempts} attempt(s)",
        f"reason:      {letter.reason}",
        f"body:        {letter.body.decode('utf-8', errors='replace')}",
        "",
    ])
