"""Where a path written in a config file points: ``~`` expanded, relative to the file's directory."""

from __future__ import annotations

import os


def resolve(config_dir: str, value: str) -> str:
    """``value`` as written in the config at ``config_dir``: absolute, ``~`` expanded, normalised."""
    return os.path.normpath(os.path.join(config_dir, os.path.expanduser(value)))
