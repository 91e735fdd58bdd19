"""``connector jebbit rotate-secret ID``: a new shared secret for an integration, no delivery refused.

Jebbit's Integrations API makes an integration's secret when it creates the integration and
documents no way to change it, so a rotation replaces the integration by a copy (same endpoint,
region and options) with a secret of its own. The source reads two variables while it rotates,
the current secret and the previous one (``shared_secret = ["${JEBBIT_SHARED_SECRET}",
"${JEBBIT_SHARED_SECRET_PREVIOUS:-}"]``), so the daemon accepts both. Run it twice:

1. it creates the copy, inactive (Jebbit posts nothing with it yet), and writes its secret to the
   env file as the current one and the secret in use as the previous one; then restart the daemon;
2. run again (the env file holds both, an inactive copy posts to the same endpoint): it activates
   the copy, has the running daemon verify Jebbit's test delivery through it, and deletes the old
   integration. Then remove the previous secret's line from the env file and restart when you like.

A step that cannot finish leaves things as they were (a copy the daemon refuses is deactivated
again) and says what to do. Secrets are never printed.
"""

from __future__ import annotations

import argparse
import os

import connector

from .api import JebbitAPI
from .envfile import write_variable
from .provision import jebbit_source, secret_variables
from .resources import Integration, IntegrationOptions, Resource
from .roundtrip import verify_test_delivery


def rotate_secret(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    config = ctx.load_config(args.config)
    source = jebbit_source(config, args.source)
    current, previous = _two_variables(ctx, config, source)
    env_file = args.env_file or os.path.join(config.directory, ".env")
    held = connector.read_env_file(env_file) if os.path.exists(env_file) else {}
    old = jebbit.integration(args.id)
    attributes = old.attributes or Integration()
    copy = _inactive_copy(jebbit, args.id, attributes.endpoint, held.get(current))
    if copy is not None and held.get(previous):
        return _finish(args, ctx, config, jebbit, source, old, copy, env_file, previous)
    return _start(args, jebbit, attributes, env_file, current, previous, held)


def _two_variables(ctx: connector.CommandContext, config: connector.ConfigView, source: str) -> tuple[str, str]:
    variables = secret_variables(ctx, config, source)
    if len(variables) != 2:
        raise connector.CommandError(
            f"{config.where(f'sources.{source}', 'shared_secret')}: a rotation needs the current and the previous "
            'secret: write shared_secret = ["${JEBBIT_SHARED_SECRET}", "${JEBBIT_SHARED_SECRET_PREVIOUS:-}"] '
            "(any names; the daemon then accepts both)")
    return variables[0], variables[1]


def _inactive_copy(jebbit: JebbitAPI, old_id: str, endpoint: str | None,
                   secret: str | None) -> Resource[Integration] | None:
    """The inactive integration to ``endpoint`` whose secret is the env file's current one."""
    for listed in jebbit.integrations():
        if listed.id == old_id or listed.attributes is None or listed.attributes.endpoint != endpoint:
            continue
        found = jebbit.integration(listed.id)
        if found.attributes is not None and found.attributes.is_active is False and secret \
                and found.attributes.shared_secret == secret:
            return found
    return None


def _start(args: argparse.Namespace, jebbit: JebbitAPI, attributes: Integration, env_file: str, current: str,
           previous: str, held: dict[str, str]) -> int:
    in_use = attributes.shared_secret
    if not in_use or not attributes.endpoint:
        raise connector.CommandError(f"Jebbit's answer for integration {args.id} carries no endpoint or shared_secret: "
                                     "nothing to rotate")
    if held.get(current) != in_use:
        raise connector.CommandError(f"{env_file}: {current} is not integration {args.id}'s secret: rotate the "
                                     f"integration this daemon verifies (or run `connector jebbit setup` first)")
    copy = jebbit.create_integration(Integration(
        endpoint=attributes.endpoint, region=attributes.region, is_active=False,
        additional_options=attributes.additional_options or IntegrationOptions()))
    secret = (copy.attributes or Integration()).shared_secret
    if not secret:
        jebbit.delete_integration(copy.id)
        raise connector.CommandError(f"Jebbit's answer for the new integration carries no shared_secret: "
                                     f"integration {args.id} is unchanged")
    write_variable(env_file, previous, in_use)
    write_variable(env_file, current, secret)
    print(f"integration {copy.id} created, inactive, to replace {args.id} (posting to {attributes.endpoint})")
    print(f"{env_file}: {current} holds the new secret, {previous} the one in use (mode 0600)")
    print("next:")
    print(f"  1. restart the daemon with --env-file {env_file}: it accepts both secrets")
    print(f"  2. connector jebbit rotate-secret {args.id} -c {args.config}   (again: activates {copy.id}, "
          f"checks the daemon verifies it, deletes {args.id})")
    return 0


def _finish(args: argparse.Namespace, ctx: connector.CommandContext, config: connector.ConfigView, jebbit: JebbitAPI,
            source: str, old: Resource[Integration], copy: Resource[Integration], env_file: str,
            previous: str) -> int:
    endpoint = (copy.attributes or Integration()).endpoint or ""
    jebbit.update_integration(copy.id, Integration(is_active=True))
    try:
        verify_test_delivery(ctx, config, jebbit, copy.id, source, endpoint, args.timeout, args.config)
    except connector.CommandError as exc:
        jebbit.update_integration(copy.id, Integration(is_active=False))
        raise connector.CommandError(f"{exc}\nintegration {copy.id} is inactive again and {old.id} unchanged: "
                                     f"restart the daemon with --env-file {env_file}, then rotate again") from None
    jebbit.delete_integration(old.id)
    print(f"integration {copy.id} active, its test delivery verified by sources.{source}; {old.id} deleted")
    print(f"next: remove the {previous} line from {env_file} (Jebbit no longer signs with it), and restart "
          "the daemon when you like")
    return 0
