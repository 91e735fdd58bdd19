"""Write one ``NAME=value`` line into a dotenv file, keeping its other lines, readable by its owner only."""

from __future__ import annotations

import os
import re
import tempfile

import connector

_SAFE = re.compile(r"[A-Za-z0-9_\-.~+/=:@]*")


def write_variable(path: str, name: str, value: str) -> bool:
    """Set ``name`` to ``value`` in the dotenv file at ``path`` (mode 0600); True if it was there before.

    The file is replaced atomically: a reader sees the old file or the new one, never half of one.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        lines = []
    except (OSError, UnicodeDecodeError) as exc:
        raise connector.CommandError(f"{path}: cannot read the env file: {getattr(exc, 'strerror', exc)}") from None
    assignment = re.compile(r"^\s*(export\s+)?" + re.escape(name) + r"\s*=")
    line = f"{name}={_quoted(value)}"
    replaced = False
    for index, existing in enumerate(lines):
        if assignment.match(existing):
            lines[index] = line
            replaced = True
    if not replaced:
        lines.append(line)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".env-")  # created mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    except OSError as exc:
        raise connector.CommandError(f"{path}: cannot write the env file: {exc.strerror}") from None
    return replaced


def _quoted(value: str) -> str:
    if _SAFE.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
