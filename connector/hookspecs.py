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
