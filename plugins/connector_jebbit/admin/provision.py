"""``connector jebbit setup``: one Jebbit integration for a config's source, its secret in an env file.

The endpoint is the public URL plus the source's ``path``. An integration already posting to that
endpoint is reused (and made to match the region, ``hash_pii`` and active state asked for), so
running setup twice makes one integration. The shared secret goes to the env file the daemon
reads with ``--env-file``, under the variable the source's ``shared_secret`` names; it is never
printed.
"""

from __future__ import annotations

import argparse
import os
import re

import connector

from .api import JebbitAPI
from .envfile import write_variable
from .resources import Integration, IntegrationOptions, Resource
from ..source import JebbitSourceConfig

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def jebbit_source(config: connector.ConfigView, name: str | None) -> str:
    """The name of the config's jebbit source: ``name``, or the only one."""
    sources = [n for n, c in config.sources.items() if isinstance(c, JebbitSourceConfig)]
    if name is not None:
        if name not in sources:
            raise connector.CommandError(
                f"{config.path}: no jebbit source named {name!r} (jebbit sources: {', '.join(sources) or 'none'})")
        return name
    if len(sources) != 1:
        found = f"several ({', '.join(sources)}): name one with --source" if sources else "none"
        raise connector.CommandError(f"{config.path}: jebbit sources: {found}")
    return sources[0]


def source_config(config: connector.ConfigView, source: str) -> JebbitSourceConfig:
    """The settings of ``source``, a jebbit source (``jebbit_source`` found it)."""
    settings = config.sources[source]
    assert isinstance(settings, JebbitSourceConfig), source
    return settings


def secret_variables(ctx: connector.CommandContext, config: connector.ConfigView, source: str) -> list[str]:
    """The variables the source's ``shared_secret`` reads, in order (``${NAME}``, with or without a
    default; one, or a list while a secret rotates)."""
    raw = ctx.raw_setting(config, f"sources.{source}", "shared_secret")
    items = raw if isinstance(raw, list) else [raw]
    found = [_VARIABLE.fullmatch(item) if isinstance(item, str) else None for item in items]
    if not found or None in found:
        raise connector.CommandError(
            f"{config.where(f'sources.{source}', 'shared_secret')}: is not of the form ${{NAME}}; the secret goes "
            'to an env file, so write shared_secret = "${JEBBIT_SHARED_SECRET}" (any variable name)')
    return [match.group(1) for match in found if match is not None]


def setup(args: argparse.Namespace, ctx: connector.CommandContext, jebbit: JebbitAPI) -> int:
    config = ctx.load_config(args.config)
    source = jebbit_source(config, args.source)
    variable = secret_variables(ctx, config, source)[0]  # while rotating, the current one
    endpoint = _endpoint(args.public_url, source_config(config, source).path)
    wanted = Integration(endpoint=endpoint, region=args.region, is_active=True,
                         additional_options=IntegrationOptions(hash_pii=args.hash_pii))
    integration, action = _integration(jebbit, wanted)
    secret = (integration.attributes or Integration()).shared_secret
    if not secret:
        raise connector.CommandError(f"Jebbit's answer for integration {integration.id} carries no shared_secret: "
                                     "ask Jebbit's Customer Success to check the integration")
    env_file = args.env_file or os.path.join(config.directory, ".env")
    replaced = _write_secret(env_file, variable, secret)
    print(f"integration {integration.id} {action}: Jebbit posts to {endpoint} "
          f"(region {args.region}, active, hash_pii {'on' if args.hash_pii else 'off'})")
    print(f"{variable} {'replaced' if replaced else 'written'} in {env_file} (mode 0600; "
          f"sources.{source}.shared_secret reads it)")
    if args.hash_pii:
        print("hash_pii: Jebbit sends each email as its SHA-256 hex digest; the jebbit_to_segment mapper uses it as "
              "userId and emailSha256Hash as it is and puts no plain email in traits")
    print("next:")
    print(f"  connector run -c {args.config} --env-file {env_file}   (restart a running daemon: it reads the "
          "secret when it starts)")
    print(f"  connector jebbit test {integration.id} -c {args.config}")
    return 0


def _endpoint(public_url: str, path: str) -> str:
    import httpx  # here: see api.py

    try:
        url = httpx.URL(public_url)
    except httpx.InvalidURL as exc:
        raise connector.CommandError(f"--public-url {public_url!r}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise connector.CommandError(f"--public-url {public_url!r}: give the daemon's public base URL, "
                                     "e.g. https://hooks.example.com")
    return public_url.rstrip("/") + path


def _integration(jebbit: JebbitAPI, wanted: Integration) -> tuple[Resource[Integration], str]:
    """The integration posting to ``wanted.endpoint``, created or made to match ``wanted``."""
    existing = next((i for i in jebbit.integrations()
                     if i.attributes is not None and i.attributes.endpoint == wanted.endpoint), None)
    if existing is None:
        return jebbit.create_integration(wanted), "created"
    current = jebbit.integration(existing.id)
    attributes = current.attributes or Integration()
    options = attributes.additional_options or IntegrationOptions()
    change = Integration(
        region=wanted.region if attributes.region != wanted.region else None,
        is_active=True if attributes.is_active is not True else None,
        additional_options=wanted.additional_options if bool(options.hash_pii) != bool(
            (wanted.additional_options or IntegrationOptions()).hash_pii) else None)
    changed = [k for k in ("region", "is_active", "additional_options") if getattr(change, k) is not None]
    if not changed:
        return current, "reused"
    updated = jebbit.update_integration(existing.id, change)
    if updated.attributes is not None and not updated.attributes.shared_secret:
        updated.attributes.shared_secret = attributes.shared_secret
    return updated, f"reused (updated {', '.join(changed).replace('additional_options', 'hash_pii')})"


def _write_secret(path: str, variable: str, secret: str) -> bool:
    replaced = write_variable(path, variable, secret)
    if connector.read_env_file(path).get(variable) != secret:
        raise connector.CommandError(f"{path}: {variable} did not read back as written: check the file by hand")
    return replaced
