"""Component types by name, with the plugin that provides each one."""

from __future__ import annotations

from dataclasses import dataclass

from .components import ComponentConfig, MapperConfig, SinkConfig, SourceConfig
from .errors import PluginError

KINDS: dict[str, type[ComponentConfig]] = {
    "source": SourceConfig,
    "mapper": MapperConfig,
    "sink": SinkConfig,
}


@dataclass(frozen=True)
class Registration:
    """One registered type: its config class and where it came from."""

    kind: str
    name: str
    config: type[ComponentConfig]
    plugin: str
    distribution: str


class Registry:
    """Source, mapper and sink types by ``type`` name, per kind."""

    def __init__(self) -> None:
        self._types: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        self._plugin = "?"
        self._distribution = "?"

    def providing(self, plugin: str, distribution: str) -> Registry:
        """Attribute the next ``add`` calls to ``plugin`` (from package ``distribution``)."""
        self._plugin, self._distribution = plugin, distribution
        return self

    def add(self, config: type[ComponentConfig]) -> None:
        """Register a component type; its kind comes from its base class, its name from its tag."""
        kind = next((k for k, base in KINDS.items() if issubclass(config, base)), None)
        if kind is None:
            raise PluginError(
                f"plugin {self._plugin!r}: {config.__qualname__} must subclass SourceConfig, "
                "MapperConfig or SinkConfig"
            )
        name = config.type_name()
        if getattr(getattr(config, "build", None), "__isabstractmethod__", False):
            raise PluginError(f"plugin {self._plugin!r}: {kind} type {name!r} ({config.__qualname__}) does not "
                              f"implement build(self, ctx): the config class is the component's factory")
        existing = self._types[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"{kind} type {name!r} is registered twice: by plugin {existing.plugin!r} "
                f"({existing.distribution}) and by plugin {self._plugin!r} ({self._distribution})"
            )
        self._types[kind][name] = Registration(kind, name, config, self._plugin, self._distribution)

    def get(self, kind: str, name: str) -> Registration | None:
        """The registration of ``name`` among ``kind``'s types, or None."""
        return self._types[kind].get(name)

    def names(self, kind: str) -> list[str]:
        """The sorted type names of one kind."""
        return sorted(self._types[kind])

    def all(self) -> list[Registration]:
        """Every registration, by kind then name."""
        return [self._types[k][n] for k in KINDS for n in sorted(self._types[k])]
