"""The command line's plugin side: where a plugin adds subcommands, and what its handlers may use."""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .admin_client import admin_url, client_options
from .components import MapperConfig, SinkConfig, SourceConfig
from .config import Component, Config, ConfigT, load_config
from .errors import PluginError
from .registry import Registry

Handler = Callable[[argparse.Namespace, "CommandContext"], int | None]


@dataclass(frozen=True)
class ConfigView:
    """A loaded config as a command sees it, read-only: its file, each component's validated
    settings by name, and where a setting is written (for messages)."""

    path: str
    sources: Mapping[str, SourceConfig]
    mappers: Mapping[str, MapperConfig]
    sinks: Mapping[str, SinkConfig]
    _config: Config = field(repr=False)

    @classmethod
    def of(cls, config: Config) -> ConfigView:
        def settings(components: Mapping[str, Component[ConfigT]]) -> Mapping[str, ConfigT]:
            return MappingProxyType({name: c.config for name, c in components.items()})

        return cls(config.path, settings(config.sources), settings(config.mappers), settings(config.sinks), config)

    @property
    def directory(self) -> str:
        """The config file's directory (relative paths in it are relative to it)."""
        return self._config.directory

    def where(self, table: str, key: str | None = None) -> str:
        """``file:line: table.key``, to start a message about one setting."""
        return self._config.where(table, key)


class CommandContext:
    """What a command handler may use of the core: config files and the running daemon."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def load_config(self, path: str, *, need_secrets: bool = False) -> ConfigView:
        """The validated config at ``path``, read-only.

        Unless ``need_secrets``, a secret setting whose environment variable is unset is left
        empty instead of being an error: a command that reads the buffer or the daemon, or sets a
        secret up, works without the secrets of components it does not talk to.
        """
        return ConfigView.of(load_config(path, self.registry, need_secrets=need_secrets))

    def raw_setting(self, config: ConfigView, table: str, key: str) -> Any:
        """The value of ``key`` in ``[table]`` as written in the file, before ``${NAME}`` is read."""
        with open(config.path, "rb") as fh:
            document: Any = tomllib.load(fh)
        for part in table.split("."):
            document = document.get(part, {}) if isinstance(document, dict) else {}
        return document.get(key) if isinstance(document, dict) else None

    def daemon_url(self, config: ConfigView, path: str) -> str:
        """The URL of ``path`` on the admin listener of the daemon that runs ``config``."""
        return admin_url(config._config, path)

    def daemon_status(self, config: ConfigView, timeout: float = 5.0) -> dict[str, Any] | None:
        """The running daemon's admin ``/status`` document, or None when nothing answers there
        (or it refused this config's ``admin.token``)."""
        import httpx  # here: ``connector run`` does not need it

        try:
            response = httpx.get(admin_url(config._config, "/status"), timeout=timeout,
                                 **client_options(config._config))
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return None
        document: dict[str, Any] = response.json()
        return document


class Commands:
    """Subcommands of ``connector``, added by the core and by plugins' ``connector_commands``."""

    def __init__(self, subparsers: Any):
        self._subparsers = subparsers
        self._owners: dict[str, str] = {}
        self.owner = "connector"

    def add(self, name: str, help: str, handler: Handler | None = None) -> argparse.ArgumentParser:
        """Add ``connector NAME``; ``handler(args, ctx)`` runs it and returns the exit code.

        Without a handler the subcommand prints its help (for a group of sub-subcommands).
        """
        if name in self._owners:
            raise PluginError(f"command {name!r} is added twice: by {self._owners[name]!r} and by {self.owner!r}")
        self._owners[name] = self.owner
        parser: argparse.ArgumentParser = self._subparsers.add_parser(name, help=help, description=help)
        parser.set_defaults(handler=handler or (lambda args, ctx: _print_help(parser)))
        return parser


def _print_help(parser: argparse.ArgumentParser) -> int:
    """A group of subcommands run without one: its help, and exit code 2."""
    parser.print_help()
    return 2
