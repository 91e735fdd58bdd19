"""Configuration: TOML, ``${ENV}`` interpolation, per-component msgspec validation.

Every error names the file, the line when it can be found, the component and the key, e.g.
``config.toml:14: sinks.segment.write_key: Expected `str`, got `int```.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import msgspec

from .buffer import BUFFER_KINDS, BufferConfig
from .components import MapperConfig, SinkConfig, SourceConfig
from .errors import ConfigError
from .paths import resolve
from .registry import Registry
from .secret import Secret, secret_fields, secret_values

SECTIONS = ("sources", "mappers", "sinks")
KIND_OF_SECTION = {"sources": "source", "mappers": "mapper", "sinks": "sink"}
ListenerT = TypeVar("ListenerT", bound="ListenerConfig")
StructT = TypeVar("StructT", bound=msgspec.Struct)
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


SHARED_BUFFERS = ("sqlite", "nats")  # buffer kinds a second process can read: delivery_process may split them


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class ServiceConfig(_Section, frozen=True):
    """``[service]``: logging, shutdown, and whether sinks run in a second process.

    ``delivery_process = "auto"`` (the default) runs them in a second process when the buffer
    is sqlite or nats and the machine gives this process two CPU cores or more.
    """

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace_seconds: float = 10.0
    delivery_process: bool | Literal["auto"] = "auto"


class ListenerConfig(_Section, frozen=True):
    """What both listeners take: where, TLS (``tls_cert`` and ``tls_key``, both or neither, re-read
    on SIGHUP), and the bounds on connections."""

    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str | None = None
    tls_key: str | None = None
    header_timeout_seconds: float = 10.0  # a request head not whole by then: closed (408 if anything came)
    idle_timeout_seconds: float = 60.0  # an idle keep-alive connection: closed
    max_connections: int = 4096  # past it, the longest-idle connection is closed to make room
    max_header_bytes: int = 16_384


class ServerConfig(ListenerConfig, frozen=True):
    """``[server]``: the public listener: the webhook sources' paths, ``/healthz`` and ``/readyz``."""

    max_body_bytes: int = 1_048_576
    body_timeout_seconds: float = 10.0
    trusted_proxies: list[str] = []  # addresses or CIDRs whose X-Forwarded-For names the client


class AdminConfig(ListenerConfig, frozen=True):
    """``[admin]``: the operator's listener: ``/status``, ``/tap``, ``/metrics``, dead letters.

    ``token`` (a secret): every route but ``/healthz`` and ``/metrics`` then needs ``Authorization:
    Bearer <token>``; required when ``host`` is not loopback.
    """

    port: int = 8081
    max_connections: int = 64  # operators and a scraper, not the internet
    token: Secret | None = None


class MappingTest(_Section, frozen=True):
    """A ``[[tests]]`` table: a mapper, one raw record (``input`` JSON text, or ``input_file``), and
    what it must give: ``expect`` (the messages, each listed key equal; nested tables the same way)
    or ``expect_dead_letter`` (a part of the reason it is refused with). Run by ``connector test``."""

    name: str
    mapper: str
    input: str | None = None
    input_file: str | None = None
    expect: list[dict[str, Any]] | None = None
    expect_dead_letter: str | None = None


ConfigT = TypeVar("ConfigT", SourceConfig, MapperConfig, SinkConfig)


@dataclass(frozen=True)
class Component(Generic[ConfigT]):
    """One configured component: its section, name and validated config."""

    kind: str
    name: str
    config: ConfigT
    plugin: str

    @property
    def inputs(self) -> list[str]:
        return list(getattr(self.config, "inputs", []))


@dataclass
class Config:
    """A loaded, validated configuration."""

    path: str
    service: ServiceConfig
    server: ServerConfig
    admin: AdminConfig
    buffer: BufferConfig
    sources: dict[str, Component[SourceConfig]] = field(default_factory=dict)
    mappers: dict[str, Component[MapperConfig]] = field(default_factory=dict)
    sinks: dict[str, Component[SinkConfig]] = field(default_factory=dict)
    tests: list[MappingTest] = field(default_factory=list)
    secrets: frozenset[str] = frozenset()

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    @property
    def delivery_process(self) -> bool:
        """Whether the sinks run in a second process (``[service] delivery_process``, resolved)."""
        if self.service.delivery_process != "auto":
            return self.service.delivery_process
        return self.buffer.__struct_config__.tag in SHARED_BUFFERS and _usable_cpus() >= 2

    def path_of(self, path: str) -> str:
        """``path`` as written in the config (``~`` expanded), relative to the config file's directory."""
        return resolve(self.directory, path)

    def where(self, table: str, key: str | None = None) -> str:
        """``file:line: table.key``, to start a message about one setting of this config."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                line = locate(fh.read().splitlines(), table, key)
        except OSError:
            line = None
        return f"{self.path}{f':{line}' if line else ''}: {table}{f'.{key}' if key else ''}"

    def components(self) -> Iterator[Component[Any]]:
        yield from self.sources.values()
        yield from self.mappers.values()
        yield from self.sinks.values()


def load_config(path: str, registry: Registry, need_secrets: bool = True) -> Config:
    """Read, interpolate and validate the config file at ``path``.

    With ``need_secrets=False`` a secret setting (``connector.Secret``) whose environment
    variable is unset is left empty: for commands that do not talk to that component.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _Loader(path, text, registry, need_secrets).load(document)


class _Loader:
    def __init__(self, path: str, text: str, registry: Registry, need_secrets: bool):
        self.path = path
        self.lines = text.splitlines()
        self.registry = registry
        self.need_secrets = need_secrets
        self.unset: list[tuple[tuple[str, ...], str]] = []  # (where, variable) left empty

    def error(self, table: str, key: str | None, message: str) -> ConfigError:
        line = self.locate(table, key)
        where = f"{self.path}:{line}" if line else self.path
        name = f"{table}.{key}" if key else table
        return ConfigError(f"{where}: {name}: {message}")

    def locate(self, table: str, key: str | None) -> int | None:
        return locate(self.lines, table, key)

    def load(self, document: dict[str, Any]) -> Config:
        secrets: set[str] = set()
        document = self.interpolate(document, ())
        unknown = sorted(set(document) - {"service", "server", "admin", "buffer", "tests", *SECTIONS})
        if unknown:
            raise self.error(unknown[0], None, "unknown section (expected service, server, admin, buffer, "
                             "sources, mappers, sinks, tests)")
        service = self.convert(document.get("service", {}), ServiceConfig, "service")
        server = self.load_listener(document.get("server", {}), ServerConfig, "server")
        admin = self.load_listener(document.get("admin", {}), AdminConfig, "admin")
        if admin.port == server.port and admin.port != 0:
            raise self.error("admin", "port", f"{admin.port} is also [server] port: the admin listener needs "
                             "a port of its own")
        if not is_loopback(admin.host) and not admin.token and ("admin", "token") not in [w for w, _ in self.unset]:
            raise self.error("admin", "token", f"admin.host {admin.host!r} is not loopback: set admin.token (a "
                             'Bearer token, "${CONNECTOR_ADMIN_TOKEN}") or bind 127.0.0.1')
        buffer = self.load_buffer(document.get("buffer", {}))
        if service.delivery_process is True and buffer.__struct_config__.tag not in SHARED_BUFFERS:
            raise self.error("service", "delivery_process", "needs the sqlite or the nats buffer (the "
                             "delivery process reads what the main process stores; a memory buffer is its own)")
        config = Config(self.path, service, server, admin, buffer)
        for section in SECTIONS:
            tables = document.get(section, {})
            if not isinstance(tables, dict):
                raise self.error(section, None, "must be a table of named components")
            for name, table in tables.items():
                component = self.load_component(section, name, table)
                getattr(config, section)[name] = component
                secrets.update(secret_values(component.config))
        config.tests = self.load_tests(document.get("tests", []), config)
        secrets.update(secret_values(buffer))
        secrets.update(secret_values(admin))
        config.secrets = frozenset(secrets)
        for where, name in self.unset:
            if not _is_secret_setting(config, where):
                raise self.unset_error(name, where)
        return config

    def load_listener(self, table: Any, cls: type[ListenerT], where: str) -> ListenerT:
        """``[server]`` or ``[admin]``, with what a Struct cannot check: TLS files both or neither,
        positive bounds, proxies that parse."""
        listener = self.convert(table, cls, where)
        if (listener.tls_cert is None) != (listener.tls_key is None):
            missing = "tls_key" if listener.tls_key is None else "tls_cert"
            raise self.error(where, missing, f"is missing: set both {where}.tls_cert and {where}.tls_key "
                             "(HTTPS), or neither")
        for key in ("header_timeout_seconds", "idle_timeout_seconds", "max_connections", "max_header_bytes"):
            if getattr(listener, key) <= 0:
                raise self.error(where, key, "must be greater than 0")
        for proxy in getattr(listener, "trusted_proxies", ()):
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise self.error(where, "trusted_proxies", f"{proxy!r} is not an address or a CIDR "
                                 "(e.g. 127.0.0.1/32, 10.0.0.0/8)") from None
        return listener

    def load_tests(self, tables: Any, config: Config) -> list[MappingTest]:
        """``[[tests]]``: each names a configured mapper, one input and one expectation."""
        if not isinstance(tables, list):
            raise self.error("tests", None, "must be an array of tables: write each as [[tests]]")
        headers = [n for n, line in enumerate(self.lines, 1) if re.match(r"^\s*\[\[\s*tests\s*\]\]", line)]
        tests = []
        for index, table in enumerate(tables):
            line = headers[index] if index < len(headers) else None

            def refuse(message: str) -> ConfigError:
                return ConfigError(f"{self.path}{f':{line}' if line else ''}: tests[{index}]: {message}")

            try:
                test = msgspec.convert(table, MappingTest, strict=False)
            except msgspec.ValidationError as exc:
                key, message = _explain(str(exc))
                raise refuse(f"{key}: {message}" if key else message) from None
            if test.mapper not in config.mappers:
                raise refuse(f"mapper: {test.mapper!r} is no mapper of this config "
                             f"({', '.join(config.mappers) or 'none configured'})")
            if (test.input is None) == (test.input_file is None):
                raise refuse("give one of input (JSON text) and input_file")
            if (test.expect is None) == (test.expect_dead_letter is None):
                raise refuse("give one of expect (the messages) and expect_dead_letter (a part of the reason)")
            tests.append(test)
        return tests

    def load_buffer(self, table: Any) -> BufferConfig:
        if not isinstance(table, dict):
            raise self.error("buffer", None, "must be a table")
        kind = table.get("type", "sqlite")
        cls = BUFFER_KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            hint = " (pip install 'connector[nats]')" if kind == "nats" else ""
            raise self.error("buffer", "type", f"unknown buffer type {kind!r}{hint} (one of: {', '.join(BUFFER_KINDS)})")
        return self.convert(table, cls, "buffer")

    def load_component(self, section: str, name: str, table: Any) -> Component[Any]:
        where = f"{section}.{name}"
        if not isinstance(table, dict):
            raise self.error(where, None, "must be a table")
        kind = KIND_OF_SECTION[section]
        type_name = table.get("type")
        if not isinstance(type_name, str):
            raise self.error(where, "type" if "type" in table else None,
                             f"needs a `type` (installed {kind} types: {self.installed(kind)})")
        registration = self.registry.get(kind, type_name)
        if registration is None:
            raise self.error(where, "type", f"unknown {kind} type {type_name!r} "
                             f"(installed: {self.installed(kind)})")
        config = self.convert(table, registration.config, where)
        return Component(kind, name, config, registration.plugin)

    def installed(self, kind: str) -> str:
        return ", ".join(self.registry.names(kind)) or "none"

    def convert(self, table: Any, cls: type[StructT], where: str) -> StructT:
        try:
            return msgspec.convert(table, cls, strict=False)
        except msgspec.ValidationError as exc:
            key, message = _explain(str(exc))
            raise self.error(where, key, message) from None

    def interpolate(self, value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, str):
            return self.substitute(value, path)
        if isinstance(value, dict):
            return {k: self.interpolate(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.interpolate(v, path) for v in value]
        return value

    def substitute(self, value: str, path: tuple[str, ...]) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is not None and (found or default is None):
                return found
            if default is not None:
                return default
            if not self.need_secrets:
                self.unset.append((path, name))
                return ""
            raise self.unset_error(name, path)

        return _ENV.sub(replace, value) if "$" in value else value

    def unset_error(self, name: str, path: tuple[str, ...]) -> ConfigError:
        return self.error(".".join(path[:-1]) or path[0], path[-1] if len(path) > 1 else None,
                          f"environment variable {name} is not set (set it, or write ${{{name}:-default}})")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reached from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_secret_setting(config: Config, where: tuple[str, ...]) -> bool:
    """Whether the setting at ``where`` (section, [name,] key) is typed ``connector.Secret``."""
    if where == ("admin", "token"):
        return True
    if where[:1] == ("buffer",) and len(where) == 2:
        return where[1] in secret_fields(type(config.buffer))
    if len(where) == 3 and where[0] in SECTIONS:
        component = getattr(config, where[0]).get(where[1])
        return component is not None and where[2] in secret_fields(type(component.config))
    return False


def locate(lines: list[str], table: str, key: str | None) -> int | None:
    """The 1-based line of ``key`` in ``[table]`` (or of the header), when it can be found."""
    header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, table.split("."))) + r"\s*\]")
    key_line = re.compile(r"^\s*" + re.escape(key or "") + r"\s*=") if key else None
    start = None
    for number, line in enumerate(lines, 1):
        if start is None:
            if header.match(line):
                start = number
                if key_line is None:
                    return number
        elif re.match(r"^\s*\[", line):
            break
        elif key_line is not None and key_line.match(line):
            return number
    if start is None and key_line is not None and "." not in table:
        return next((n for n, line in enumerate(lines, 1) if key_line.match(line)), None)
    return start


def _explain(message: str) -> tuple[str | None, str]:
    """Split a msgspec validation message into the offending key and a readable reason."""
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    if unknown:
        return unknown.group(1), "unknown key (check its spelling against the plugin's settings)"
    missing = re.match(r"Object missing required field `([^`]+)`", message)
    if missing:
        return missing.group(1), "required key is missing"
    at = re.search(r" - at `\$\.([A-Za-z0-9_\-]+)(.*)`$", message)
    if at:
        reason = message[: at.start()]
        return at.group(1), reason + (f" (at {at.group(2)})" if at.group(2) else "")
    return None, message


def _usable_cpus() -> int:
    """CPU cores this process may run on (its affinity, where the platform tells)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
