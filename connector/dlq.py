"""``connector dlq``: list, show, replay and purge dead letters, daemon running or not."""

from __future__ import annotations

from collections.abc import Sequence

from .config import Config
from .errors import CommandError, ConfigError
from .records import DeadLetter
from .status import when


async def run_dlq(config: Config, action: str, ids: Sequence[int], everything: bool) -> int:
    """Carry out one ``connector dlq`` action against the configured buffer."""
    buffer = config.buffer.build(config.directory)
    if not buffer.durable:
        raise ConfigError(f"{config.path}: buffer.type: a {type(config.buffer).__struct_config__.tag} "
                          "buffer keeps no dead letters between runs")
    if action in ("replay", "purge") and not ids and not everything:
        raise ConfigError(f"dlq {action}: name dead-letter ids, or pass --all")
    await buffer.open(sinks=[])
    try:
        letters = await buffer.dead_letters(ids)
        missing = sorted(set(ids) - {letter.id for letter in letters})
        if action in ("list", "show"):
            for letter in letters:
                print(line(letter) if action == "list" else _full(letter))
        elif missing:
            pass  # replay or purge nothing when an id is wrong: the user meant other letters
        elif action == "replay":
            print(f"replayed {await buffer.replay(ids)} dead letter(s)")
        else:
            print(f"purged {await buffer.purge(ids)} dead letter(s)")
    finally:
        await buffer.close()
    if missing:
        raise CommandError(f"no dead letter with id {', '.join(map(str, missing))} "
                           f"(`connector dlq list -c {config.path}` shows them)")
    return 0


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
