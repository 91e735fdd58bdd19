"""The command line: ``connector run | check | test | plugins | status | tap | dlq | backup`` and plugins'
commands."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from typing import Any

import anyio
import msgspec

from .. import logging as connector_logging
from ..commands import CommandContext, Commands
from ..config import Config, load_config
from ..envfile import apply_env_file
from ..errors import ConnectorError
from ..graph import build_graph, config_warnings
from ..plugins import PluginManager
from ..secret import secret_fields

DEFAULT_CONFIG = "connector.toml"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``connector`` script; returns the process exit code."""
    try:
        plugins = PluginManager()
        context = CommandContext(plugins.load())
        parser = _parser(plugins)
    except ConnectorError as exc:
        print(f"connector: error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    connector_logging.configure("info")
    try:
        return int(args.handler(args, context) or 0)
    except ConnectorError as exc:
        print(f"connector: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`connector plugins | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser(plugins: PluginManager) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connector", description=__doc__)
    parser.add_argument("--version", action="version", version=f"connector {version('connector')}")
    commands = Commands(parser.add_subparsers(dest="command", metavar="COMMAND"))

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        return commands.add(name, help, handler)

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file (TOML)")
        return sub

    def with_env_file(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--env-file", metavar="FILE",
                         help="read NAME=value lines into the environment first (the environment wins)")
        return sub

    run = with_env_file(with_config(command("run", _run, "run the daemon until SIGTERM or SIGINT")))
    run.add_argument("--role", choices=["delivery"], help=argparse.SUPPRESS)
    run.add_argument("--control-socket", help=argparse.SUPPRESS)
    run.add_argument("--main-pid", type=int, help=argparse.SUPPRESS)
    with_env_file(with_config(command("check", _check, "validate the config and print the resolved graph")))
    command("plugins", _plugins, "list the registered source, mapper and sink types")
    with_config(command("status", _status, "per sink: lag, delivered, dead letters, last error"))
    tap = with_config(command("tap", _tap, "stream what components emit, live, as NDJSON"))
    tap.add_argument("--component", help="only this source, mapper or sink")
    dlq = command("dlq", None, "inspect and replay dead letters")
    actions = dlq.add_subparsers(dest="action", metavar="ACTION")
    for name, help in (("list", "list dead letters"), ("show", "show dead letters in full"),
                       ("replay", "put dead letters back for their sink"), ("purge", "delete dead letters")):
        sub = with_config(actions.add_parser(name, help=help, description=help))
        sub.add_argument("ids", nargs="*", type=int, help="dead-letter ids")
        if name in ("replay", "purge"):
            sub.add_argument("--all", action="store_true", help="every dead letter")
        sub.set_defaults(handler=_dlq, action=name)
    with_config(command("test", _test, "run the config's [[tests]]: a mapper, a record, what it must give"))
    look = with_config(command("preview", _preview, "map the last stored records with a mapper as the config "
                                                   "defines it (read-only)"))
    look.add_argument("--mapper", required=True, help="the mapper's name")
    look.add_argument("--last", type=int, default=20, help="how many records (default 20)")
    look.add_argument("--against", metavar="OLD", help="another config: print only records whose output differs")
    copy = with_config(command("backup", _backup, "copy the sqlite buffer while the daemon runs (or not)"))
    copy.add_argument("destination", help="the copy's file (a new one)")
    scaffold = command("new-plugin", _new_plugin, "write a plugin package (source, mapper, sink, tests) to start from")
    scaffold.add_argument("name", help="the plugin's name: lowercase letters, digits, underscores, hyphens "
                                       "(e.g. surveymonkey-poll; the module gets underscores)")
    for part in ("source", "mapper", "sink"):
        scaffold.add_argument(f"--{part}", action="store_true", help=f"include a {part} (default: all three)")
    scaffold.add_argument("--polling", action="store_true",
                          help="the source polls an API (a cursor, backoff, pause) instead of taking webhooks; "
                               "alone, it writes the polling source and a mapper")
    scaffold.add_argument("--directory", default=".", help="where to write connector-NAME/ (default: here)")
    plugins.add_commands(commands)
    return parser


def _with_secrets(args: argparse.Namespace, ctx: CommandContext) -> Any:
    if args.env_file:
        apply_env_file(args.env_file)
    return _full_config(ctx, args.config, need_secrets=True)


def _run(args: argparse.Namespace, ctx: CommandContext) -> int:
    from ..daemon import assemble

    os.umask(0o077)  # what the daemon writes (the buffer, its -wal and -shm, sinks' files) is its own
    config = _with_secrets(args, ctx)
    if args.role == "delivery":
        connector_logging.configure(config.service.log_level, config.secrets, role="delivery")

        async def run() -> int:
            return await assemble.delivery_process(config, args.control_socket, args.main_pid).run()
    else:
        role = "ingest" if config.delivery_process else "daemon"
        connector_logging.configure(config.service.log_level, config.secrets, role=role)

        async def run() -> int:
            return await assemble.main_process(config).run()
    return anyio.run(run, backend_options={"use_uvloop": True})


def _check(args: argparse.Namespace, ctx: CommandContext) -> int:
    config = _with_secrets(args, ctx)
    build_graph(config)  # rejects all that `run` rejects
    print(f"{config.path}: ok")
    print(f"buffer: {_describe(config.buffer)}")
    if not config.buffer.build(config.directory).durable:
        print("warning: the memory buffer keeps records in memory only: a restart loses them")
    if getattr(config.buffer, "replicas", None) == 1:
        print("warning: buffer.replicas = 1: a single NATS server acknowledges before it syncs to disk; "
              "run production with replicas = 3")
    for section in ("server", "admin"):
        listener = getattr(config, section)
        print(f"{section}: {'https' if listener.tls_cert else 'http'}://{listener.host}:{listener.port}"
              + ("  (token required)" if section == "admin" and listener.token else ""))
    print(f"sinks run in: {'a second process (delivery_process)' if config.delivery_process else 'the main process'}")
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    for component in config.components():
        print(f"{component.kind} {component.name} ({component.plugin}): {_describe(component.config)}")
    return 0


def _describe(config: msgspec.Struct) -> str:
    secrets = set(secret_fields(type(config)))
    fields = msgspec.structs.asdict(config)
    shown = {k: ("***" if k in secrets and v else v) for k, v in fields.items()}
    tag = type(config).__struct_config__.tag
    return msgspec.json.encode({"type": tag, **shown}).decode()


def _new_plugin(args: argparse.Namespace, ctx: CommandContext) -> int:
    from .scaffold import PARTS, new_plugin

    root = new_plugin(args.name, args.directory, {part for part in PARTS if getattr(args, part)}, args.polling)
    print(f"wrote {root}")
    print(f"next: cd {root} && pip install -e '.[test]' && python -m pytest")
    return 0


def _plugins(args: argparse.Namespace, ctx: CommandContext) -> int:
    registry = ctx.registry
    rows = [(r.kind, r.name, r.plugin, r.distribution) for r in registry.all()]
    widths = [max(len(row[i]) for row in [("KIND", "TYPE", "PLUGIN", "PACKAGE"), *rows]) for i in range(4)]
    for row in [("KIND", "TYPE", "PLUGIN", "PACKAGE"), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _status(args: argparse.Namespace, ctx: CommandContext) -> int:
    from .status import show_status

    return anyio.run(show_status, _full_config(ctx, args.config))


def _tap(args: argparse.Namespace, ctx: CommandContext) -> int:
    from .status import stream_tap

    return stream_tap(_full_config(ctx, args.config), args.component)


def _test(args: argparse.Namespace, ctx: CommandContext) -> int:
    from .mapping_tests import run_tests

    return run_tests(_full_config(ctx, args.config))


def _preview(args: argparse.Namespace, ctx: CommandContext) -> int:
    from .preview import preview

    against = _full_config(ctx, args.against) if args.against else None
    return preview(_full_config(ctx, args.config), args.mapper, args.last, against)


def _backup(args: argparse.Namespace, ctx: CommandContext) -> int:
    from .backup import backup

    return backup(_full_config(ctx, args.config), args.destination)


def _dlq(args: argparse.Namespace, ctx: CommandContext) -> int:
    from .dlq import run_dlq

    config = _full_config(ctx, args.config)
    return anyio.run(run_dlq, config, args.action, args.ids, getattr(args, "all", False))


if __name__ == "__main__":
    sys.exit(main())


def _full_config(ctx: CommandContext, path: str, need_secrets: bool = False) -> Config:
    """The core's own commands take the whole config (a plugin's get ``ctx.load_config``'s view)."""
    return load_config(path, ctx.registry, need_secrets=need_secrets)
