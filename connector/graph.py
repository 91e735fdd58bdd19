"""The component graph: sources, mappers and sinks wired by ``inputs``, checked and built."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .components import BuildContext, Mapper, PollingSource, Sink, Source, WebhookSource
from .config import Config, is_loopback
from .errors import ConfigError
from .ingress.webhooks import RESERVED_PATHS
from .logging import logger
from .metrics import ComponentMetrics
from .secret import secret_fields, secret_list

MIN_SECRET_LENGTH = 16
EXAMPLE_SECRET = "dev-secret-change-me"  # config.example.toml's and the README's: known to everyone


def check_graph(config: Config) -> None:
    """Reject dangling, cyclic or ill-typed ``inputs`` and clashing names, naming the key."""
    for name in set(config.sources) & set(config.mappers):
        raise ConfigError(f"{config.where(f'mappers.{name}')}: a source is named {name!r} too; "
                          "inputs refer to components by name, so names must be unique")
    for mapper in config.mappers.values():
        _check_inputs(config, "mappers", mapper.name, mapper.inputs, allowed=config.sources)
    for sink in config.sinks.values():
        _check_inputs(config, "sinks", sink.name, sink.inputs, allowed={**config.sources, **config.mappers})


def config_warnings(config: Config) -> list[str]:
    """What ``connector check`` warns about: a valid config that will not do what was meant."""
    warnings = []
    for sink in config.sinks.values():
        if getattr(sink.config, "takes_raw_records", True):
            continue
        for item in sink.inputs:
            if item in config.sources:
                warnings.append(f"sinks.{sink.name} reads source {item!r} directly: a {sink.config.type_name()} "
                                "sink needs mapped messages, so every raw record would be dead-lettered; "
                                "put a mapper between them")
    secrets = [(f"{c.kind}s.{c.name}.{name}", getattr(c.config, name))
               for c in config.components() for name in secret_fields(type(c.config))]
    secrets.append(("admin.token", config.admin.token))
    for where, value in secrets:
        for item in secret_list(value):
            if item == EXAMPLE_SECRET:
                warnings.append(f"{where} is the example secret of the README and config.example.toml: anyone "
                                "can sign deliveries with it; set your own (e.g. `openssl rand -hex 32`)")
            elif len(item) < MIN_SECRET_LENGTH:
                warnings.append(f"{where} is shorter than {MIN_SECRET_LENGTH} characters: easy to guess, and logs "
                                "only redact it where it stands alone")
    if not is_loopback(config.server.host) and not config.server.tls_cert:
        warnings.append(f"server.host {config.server.host!r} serves webhooks on a public address over plain HTTP: "
                        "set server.tls_cert and server.tls_key, or bind 127.0.0.1 behind an HTTPS proxy")
    if not is_loopback(config.admin.host):
        warnings.append(f"admin.host {config.admin.host!r} is not loopback: /status, /tap (live records, emails "
                        "included) and the dead letters are reachable beyond this machine, guarded by admin.token "
                        "only" + ("" if config.admin.tls_cert else ", sent in clear text (set admin.tls_cert)"))
    return warnings


def _check_inputs(config: Config, section: str, name: str, inputs: list[str], allowed: dict[str, Any]) -> None:
    where = config.where(f"{section}.{name}", "inputs")
    if not inputs:
        raise ConfigError(f"{where}: needs at least one input")
    for item in inputs:
        if item in allowed:
            continue
        if section == "mappers" and item in config.mappers:
            if item == name or name in _upstream_mappers(config, item):
                raise ConfigError(f"{where}: {item!r} leads back to {name!r}: inputs must not form a cycle")
            raise ConfigError(f"{where}: {item!r} is a mapper; a mapper's inputs are sources "
                              f"({', '.join(sorted(config.sources)) or 'none configured'})")
        known = ", ".join(sorted(allowed)) or "none configured"
        raise ConfigError(f"{where}: unknown input {item!r} (known: {known})")


def _upstream_mappers(config: Config, start: str) -> set[str]:
    """Every mapper that ``start`` reads from, directly or not."""
    seen: set[str] = set()
    stack = [i for i in config.mappers[start].inputs if i in config.mappers]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(i for i in config.mappers[node].inputs if i in config.mappers)
    return seen


@dataclass(frozen=True)
class Route:
    """How records of one source reach a sink: through ``mapper`` (named ``name``) or raw."""

    name: str
    mapper: Mapper | None


@dataclass
class Sources:
    """The built sources: what the ingest side runs."""

    webhook: list[WebhookSource] = field(default_factory=list)
    polling: list[PollingSource] = field(default_factory=list)

    def names(self) -> set[str]:
        return {s.name for s in [*self.webhook, *self.polling]}


@dataclass
class Sinks:
    """The built mappers and sinks, and how records reach each sink: what the delivery side runs."""

    sinks: dict[str, Sink] = field(default_factory=dict)
    routes: dict[str, dict[str, list[Route]]] = field(default_factory=dict)
    rebuild: dict[str, Callable[[], Sink]] = field(default_factory=dict)  # a fresh sink, after one failed


def build_graph(config: Config) -> tuple[Sources, Sinks]:
    """Check the wiring, then build every component (what ``connector check`` does)."""
    return build_sources(config), build_sinks(config)


def build_sources(config: Config) -> Sources:
    """Check the wiring, then build the sources."""
    check_graph(config)
    graph = Sources()
    paths: dict[str, str] = {}
    for component in config.sources.values():
        context = _context(config, component.name, component.kind)
        source: Source = component.config.build(context)
        source.name = component.name
        if isinstance(source, WebhookSource):
            where = config.where(f"sources.{component.name}", "path")
            if not source.path.startswith("/") or source.path in RESERVED_PATHS:
                raise ConfigError(f"{where}: {source.path!r} must start with / and not be one of "
                                  f"{', '.join(RESERVED_PATHS)}")
            if source.path in paths:
                raise ConfigError(f"{where}: {source.path!r} is also the path of sources.{paths[source.path]}")
            paths[source.path] = component.name
            graph.webhook.append(source)
        elif isinstance(source, PollingSource):
            graph.polling.append(source)
        else:  # it would build, and run nowhere
            raise ConfigError(f"{config.where(f'sources.{component.name}', 'type')}: {type(component.config).__name__}"
                              f".build returned a {type(source).__name__}, neither a connector.WebhookSource nor a "
                              "connector.PollingSource: the plugin must return one of the two")
    return graph


def build_mappers(config: Config) -> dict[str, Mapper]:
    """Build the mappers (what ``connector test`` runs)."""
    return {c.name: c.config.build(_context(config, c.name, c.kind))
            for c in config.mappers.values()}


def build_sinks(config: Config) -> Sinks:
    """Check the wiring, then build the mappers and sinks."""
    check_graph(config)
    graph = Sinks()
    mappers = build_mappers(config)
    for component in config.sinks.values():
        routes: dict[str, list[Route]] = {}
        for item in component.inputs:
            if item in config.sources:
                routes.setdefault(item, []).append(Route(item, None))
            else:
                for source in config.mappers[item].inputs:
                    routes.setdefault(source, []).append(Route(item, mappers[item]))
        graph.routes[component.name] = routes
        build = functools.partial(component.config.build,
                                  _context(config, component.name, component.kind))
        graph.sinks[component.name] = build()
        graph.rebuild[component.name] = build
    return graph


def _context(config: Config, name: str, kind: str) -> BuildContext:
    return BuildContext(name=name, config_dir=config.directory, log=logger(name),
                        metrics=ComponentMetrics(name, kind))
