"""The plugin manager: entry points, explicitly named modules, and plugins blocked by name.

Environment variables:
- ``CONNECTOR_DISABLE_PLUGINS``: comma-separated entry-point names not to load.
- ``CONNECTOR_PLUGINS``: comma-separated importable modules to load as plugins as well (for
  plugins under development or in tests, without packaging them).
"""

from __future__ import annotations

import importlib
import os

import pluggy

from . import hookspecs
from .commands import Commands
from .errors import PluginError
from .registry import Registry

ENTRY_POINT_GROUP = "connector"


class PluginManager:
    """pluggy's manager for the ``connector`` project, with the registry it fills."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.registry = Registry()

    def load(self) -> Registry:
        """Load every plugin, check the hook implementations, and fill the registry."""
        for name in _split(os.environ.get("CONNECTOR_DISABLE_PLUGINS", "")):
            self._pm.set_blocked(name)
        self._pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for module in _split(os.environ.get("CONNECTOR_PLUGINS", "")):
            if self._pm.is_blocked(module) or self._pm.has_plugin(module):
                continue
            try:
                plugin = importlib.import_module(module)
            except ImportError as exc:
                raise PluginError(f"CONNECTOR_PLUGINS: cannot import {module!r}: {exc}") from None
            if not self._pm.is_registered(plugin):  # installed too: its entry point registered it already
                self._pm.register(plugin, name=module)
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from None
        distributions = {id(plugin): dist.project_name for plugin, dist in self._pm.list_plugin_distinfo()}
        for impl in self._pm.hook.connector_register.get_hookimpls():
            distribution = distributions.get(id(impl.plugin), impl.plugin_name)
            impl.function(registry=self.registry.providing(impl.plugin_name, distribution))
        return self.registry

    def add_commands(self, commands: Commands) -> None:
        """Let every plugin add its subcommands to the command line (after ``load``)."""
        for impl in self._pm.hook.connector_commands.get_hookimpls():
            commands.owner = f"plugin {impl.plugin_name!r}"
            impl.function(commands=commands)


def load_registry() -> Registry:
    """A registry filled from every installed and enabled plugin."""
    return PluginManager().load()


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
