"""Hook specifications: the plugin author's manual.

A plugin is a module (or object) with functions marked ``@connector.hookimpl``, registered
through the ``connector`` entry-point group in its package metadata::

    [project.entry-points.connector]
    myplugin = "connector_myplugin"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .commands import Commands
    from .registry import Registry

PROJECT = "connector"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def connector_register(registry: Registry) -> None:
    """Register the component types this plugin provides.

    Called once per plugin when the plugin manager starts, before any config is read.

    :param registry: call ``registry.add(ConfigClass)`` for each type. ``ConfigClass`` subclasses
        ``connector.SourceConfig``, ``connector.MapperConfig`` or ``connector.SinkConfig`` with
        ``tag="<type name>"``; its fields are the settings a config table may hold.
    :return: nothing. Registering a type name that another plugin registered is an error that
        names both plugins.

    .. versionadded:: 0.1
    """


@hookspec
def connector_commands(commands: Commands) -> None:
    """Add subcommands to the ``connector`` command line (``connector <name> ...``).

    Called once per process by ``connector``'s command line, after ``connector_register``, so
    ``connector --help`` lists every plugin's commands beside the core's.

    :param commands: call ``commands.add(name, help, handler)``; it returns the subcommand's
        ``argparse.ArgumentParser`` for its options (or its own sub-subcommands: give those a
        handler with ``parser.set_defaults(handler=...)``). A handler is called as
        ``handler(args, ctx)`` with the parsed arguments and a ``connector.CommandContext``
        (config files without unrelated secrets, raw settings, the running daemon's status) and returns the
        exit code. Raise ``connector.CommandError`` for a one-line error and exit 1.
    :return: nothing. A name another plugin or the core already uses is an error naming both.

    .. versionadded:: 0.2
    """
