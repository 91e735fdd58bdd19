"""``Secret``: the annotation that marks a config string as a credential, and how to find such fields.

A leaf module: the config loader, the buffers and plugins use it; it imports nothing of the core.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Secret = Annotated[str, msgspec.Meta(extra={"secret": True})]
"""A config string that is a credential: redacted in ``connector check`` and in logs."""


def secret_list(value: str | list[str] | None) -> list[str]:
    """A setting that takes one secret or a list of them (several while one is rotated), as a list
    of the non-empty ones: what a source verifies against, each in turn."""
    if value is None:
        return []
    return [item for item in ([value] if isinstance(value, str) else value) if item]


def secret_values(config: msgspec.Struct) -> set[str]:
    """The values of the fields of ``config`` typed ``connector.Secret`` (strings, or lists)."""
    values: set[str] = set()
    for name in secret_fields(type(config)):
        values.update(secret_list(getattr(config, name)))
    return values


def secret_fields(cls: type) -> list[str]:
    """Names of the fields of a Struct class marked secret (``Secret``, ``list[Secret]``...)."""
    info = msgspec.inspect.type_info(cls)
    return [f.name for f in getattr(info, "fields", ()) if _is_secret(f.type)]


def _is_secret(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.Metadata):
        return bool((t.extra or {}).get("secret")) or _is_secret(t.type)
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_is_secret(x) for x in t.types)
    if isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.TupleType)):
        inner = getattr(t, "item_type", None)
        return inner is not None and _is_secret(inner)
    return False

