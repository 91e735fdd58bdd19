"""``connector jebbit ...``: Jebbit's Integrations API from the command line.

    connector jebbit setup -c CONFIG --public-url URL     an integration, its secret in an env file
    connector jebbit test ID -c CONFIG                     a verified round trip through the daemon
    connector jebbit rotate-secret ID -c CONFIG            a new secret, in two runs around a restart
    connector jebbit backfill ID [--wait] [-c CONFIG]      Jebbit re-sends past sessions
    connector jebbit self | integrations | mappings | backfills ...

Tables for people, ``--json`` for scripts; secrets show as ``***`` in both.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

import connector

from . import provision, rotation, roundtrip
from .api import Credentials, JebbitAPI
from .resources import Integration, IntegrationOptions, Mapping, Resource

Action = Callable[[argparse.Namespace, connector.CommandContext, JebbitAPI], int]
DEFAULT_CONFIG = "connector.toml"


def add_commands(commands: connector.Commands) -> None:
    """``connector jebbit`` and its subcommands."""
    jebbit = commands.add("jebbit", "set up and drive Jebbit's Integrations API (JEBBIT_CLIENT_ID/SECRET)")
    actions = jebbit.add_subparsers(dest="action", metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="Jebbit's API (default $JEBBIT_API_URL or https://api2.jebbit.com)")
    common.add_argument("--auth-url", help="Jebbit's token URL (default $JEBBIT_AUTH_URL or "
                                           "https://auth.jebbit.com/oauth/token)")

    def action(parent: Any, name: str, help: str, run: Action, json: bool = False) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help, parents=[common])
        if json:
            parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.set_defaults(handler=_calling(run))
        return parser

    def config(parser: argparse.ArgumentParser, default: str | None = DEFAULT_CONFIG) -> None:
        parser.add_argument("-c", "--config", default=default, help="the daemon's config file")
        parser.add_argument("--source", help="the jebbit source (default: the config's only one)")

    setup = action(actions, "setup", "create (or reuse) the integration for a source; write its secret to an env file",
                   provision.setup)
    config(setup)
    setup.add_argument("--public-url", required=True, help="where Jebbit reaches this daemon, e.g. https://hooks.example.com")
    setup.add_argument("--region", choices=["us", "eu"], default="us", help="where Jebbit processes the data")
    setup.add_argument("--hash-pii", action="store_true", help="Jebbit sends emails as SHA-256 hex digests")
    setup.add_argument("--env-file", help="where to write the secret (default: .env beside the config)")

    test = action(actions, "test", "ask Jebbit for its test delivery and check the running daemon verified it",
                  roundtrip.test)
    test.add_argument("id", help="integration id")
    config(test)
    test.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the delivery (default 30)")

    rotate = action(actions, "rotate-secret", "give an integration a new shared secret without refusing a delivery "
                    "(run twice: before and after restarting the daemon)", rotation.rotate_secret)
    rotate.add_argument("id", help="integration id")
    config(rotate)
    rotate.add_argument("--env-file", help="where the secrets are (default: .env beside the config)")
    rotate.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the test delivery (default 30)")

    backfill = action(actions, "backfill", "ask Jebbit to re-send an integration's past sessions", roundtrip.backfill)
    backfill.add_argument("id", help="integration id")
    config(backfill, default=None)
    backfill.add_argument("--wait", action="store_true", help="follow it until it ends (exit 1 if it failed)")
    backfill.add_argument("--poll-seconds", type=float, default=2.0, help="how often to ask Jebbit (default 2)")

    action(actions, "self", "the business these credentials act for", _self, json=True)

    group = actions.add_parser("integrations", help="list, show, update and delete integrations")
    group.set_defaults(handler=lambda args, ctx, parser=group: _help(parser))
    items = group.add_subparsers(dest="item_action", metavar="ACTION")
    action(items, "list", "every integration", _list_integrations, json=True)
    action(items, "show", "one integration", _show_integration, json=True).add_argument("id")
    update = action(items, "update", "change an integration", _update_integration, json=True)
    update.add_argument("id")
    update.add_argument("--endpoint", help="the URL Jebbit posts to")
    update.add_argument("--region", choices=["us", "eu"])
    active = update.add_mutually_exclusive_group()
    active.add_argument("--active", dest="is_active", action="store_const", const=True)
    active.add_argument("--inactive", dest="is_active", action="store_const", const=False)
    hashing = update.add_mutually_exclusive_group()
    hashing.add_argument("--hash-pii", dest="hash_pii", action="store_const", const=True)
    hashing.add_argument("--no-hash-pii", dest="hash_pii", action="store_const", const=False)
    action(items, "delete", "delete an integration (Jebbit stops posting)", _delete_integration).add_argument("id")

    group_b = actions.add_parser("backfills", help="list and show historic backfills")
    group_b.set_defaults(handler=lambda args, ctx, parser=group_b: _help(parser))
    backfills = group_b.add_subparsers(dest="item_action", metavar="ACTION")
    action(backfills, "list", "every backfill", _list_backfills, json=True)
    action(backfills, "show", "one backfill", _show_backfill, json=True).add_argument("id")

    group_m = actions.add_parser("mappings", help="list, create and delete integration mappings")
    group_m.set_defaults(handler=lambda args, ctx, parser=group_m: _help(parser))
    mappings = group_m.add_subparsers(dest="item_action", metavar="ACTION")
    action(mappings, "list", "every mapping", _list_mappings, json=True)
    create = action(mappings, "create", "send a Jebbit variable under your name for it", _create_mapping, json=True)
    create.add_argument("--integration", required=True, help="integration id")
    create.add_argument("--jebbit-var", required=True, help="Jebbit's variable, e.g. Outcome")
    create.add_argument("--client-var", required=True, help="the key it arrives under, e.g. Bucket")
    create.add_argument("--default", help="the value sent when the session has none")
    action(mappings, "delete", "delete a mapping", _delete_mapping).add_argument("id")


def _calling(run: Action) -> Callable[[argparse.Namespace, connector.CommandContext], int]:
    def handler(args: argparse.Namespace, ctx: connector.CommandContext) -> int:
        with JebbitAPI(Credentials.from_env(args.api_url, args.auth_url)) as jebbit:
            return run(args, ctx, jebbit)

    return handler


# -- reading and changing resources -----------------------------------------------------------

def _self(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    return _print(args, [jebbit.business()], ("name",), one=True)


def _list_integrations(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    return _print(args, jebbit.integrations(), ("endpoint", "region", "is_active", "hash_pii"))


def _show_integration(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    return _print(args, [jebbit.integration(args.id)], None)


def _update_integration(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    change = Integration(endpoint=args.endpoint, region=args.region, is_active=args.is_active,
                         additional_options=None if args.hash_pii is None else IntegrationOptions(hash_pii=args.hash_pii))
    if change == Integration():
        raise connector.CommandError("integrations update: give --endpoint, --region, --active/--inactive "
                                     "or --hash-pii/--no-hash-pii")
    return _print(args, [jebbit.update_integration(args.id, change)], None)


def _delete_integration(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    jebbit.delete_integration(args.id)
    print(f"integration {args.id} deleted")
    return 0


def _list_backfills(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    return _print(args, jebbit.backfills(), ("integration_id", "status", "updated_at"))


def _show_backfill(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    return _print(args, [jebbit.backfill(args.id)], None)


def _list_mappings(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    return _print(args, jebbit.mappings(), ("integration_id", "jebbit_var", "client_var", "default"))


def _create_mapping(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    mapping = Mapping(integration_id=args.integration, jebbit_var=args.jebbit_var, client_var=args.client_var,
                      default=args.default)
    return _print(args, [jebbit.create_mapping(mapping)], None)


def _delete_mapping(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    jebbit.delete_mapping(args.id)
    print(f"mapping {args.id} deleted")
    return 0


# -- output ------------------------------------------------------------------------------------

def _print(args: argparse.Namespace, resources: Sequence[Resource[Any]], columns: Sequence[str] | None,
           one: bool = False) -> int:
    """A table (``columns``; None: every attribute of one resource, a line each) or ``--json``.

    JSON is a list of objects, or one object for a command about one resource.
    """
    rows = [_flat(resource) for resource in resources]
    if getattr(args, "json", False):
        print(msgspec.json.encode(rows[0] if one or columns is None else rows).decode())
        return 0
    if columns is None:
        for row in rows:
            width = max(map(len, row))
            for key, value in row.items():
                print(f"{key.ljust(width)}  {_cell(value)}")
        return 0
    table = [("ID", *(c.upper() for c in columns))]
    table += [(row["id"], *(_cell(row.get(c)) for c in columns)) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return 0


def _flat(resource: Resource[Any]) -> dict[str, Any]:
    """``id``, ``type`` and the attributes that are set, ``hash_pii`` lifted out; secrets as ``***``."""
    attributes = msgspec.to_builtins(resource.attributes) if resource.attributes is not None else {}
    options = attributes.pop("additional_options", None) or {}
    row = {"id": resource.id, "type": resource.type,
           **{k: v for k, v in attributes.items() if v is not None}}
    if "hash_pii" in options:
        row["hash_pii"] = options["hash_pii"]
    if row.get("shared_secret"):
        row["shared_secret"] = "***"
    return row


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _help(parser: argparse.ArgumentParser) -> int:
    """A group of actions run without one: its help, and exit code 2."""
    parser.print_help()
    return 2
