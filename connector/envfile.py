"""``--env-file``: ``NAME=value`` lines (dotenv syntax, read by python-dotenv) put into the environment.

The process environment wins over the file, so a deployment can override one value without
editing it. A line the parser cannot read is an error naming the file and the line (never its
value: it may hold a secret).
"""

from __future__ import annotations

import io
import os

import dotenv
from dotenv.parser import parse_stream

from .errors import ConfigError


def read_env_file(path: str) -> dict[str, str]:
    """The variables ``path`` sets, ``${OTHER}`` references expanded."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the env file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the env file is not UTF-8 text") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ConfigError(f"{path}:{binding.original.line}: not a NAME=value line")
    values = dotenv.dotenv_values(stream=io.StringIO(text))
    return {name: value for name, value in values.items() if value is not None}


def apply_env_file(path: str) -> None:
    """Set each variable of ``path`` that the environment does not already set."""
    for name, value in read_env_file(path).items():
        os.environ.setdefault(name, value)
