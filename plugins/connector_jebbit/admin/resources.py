"""Jebbit's Integrations API resources as JSON:API documents (msgspec Structs).

Shapes from Jebbit's developer docs and OpenAPI files (``api2.jebbit.com``): a document is
``{"data": resource}`` or ``{"data": [resource...]}``; a resource is ``{"id", "type",
"attributes"}``; an error is ``{"errors": [{"status", "title"}]}``. Every attribute is optional
here: Jebbit's own examples leave most of them out.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec


class Business(msgspec.Struct, kw_only=True):
    """``GET /api/v1/self``: the business the credentials belong to."""

    name: str | None = None


class IntegrationOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``additional_options`` of an integration (``hash_pii`` sends emails as SHA-256 hex)."""

    hash_pii: bool | None = None
    campaign_name_filter: str | None = None
    include_url_params: bool | None = None
    include_sub_channel: bool | None = None
    include_outcome_names: bool | None = None
    require_outcomes: bool | None = None


class Integration(msgspec.Struct, kw_only=True):
    """A webhook integration: where Jebbit posts, and the secret it signs with."""

    endpoint: str | None = None
    region: str | None = None
    is_active: bool | None = None
    service_name: str | None = None
    include_uids: bool | None = None
    include_mapped_attributes: bool | None = None
    require_opt_in: bool | None = None
    additional_options: IntegrationOptions | None = None
    shared_secret: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class Backfill(msgspec.Struct, kw_only=True):
    """A historic backfill: Jebbit re-sends an integration's past sessions to its endpoint."""

    status: str | None = None
    integration_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class Mapping(msgspec.Struct, kw_only=True):
    """An integration mapping: Jebbit's ``jebbit_var`` sent under the client's ``client_var``."""

    jebbit_var: str | None = None
    client_var: str | None = None
    integration_id: str | None = None
    default: str | None = None


A = TypeVar("A")


class Resource(msgspec.Struct, Generic[A]):
    """One JSON:API resource object."""

    id: str
    type: str = ""
    attributes: A | None = None


class One(msgspec.Struct, Generic[A]):
    """A document holding one resource."""

    data: Resource[A]


class Many(msgspec.Struct, Generic[A]):
    """A document holding a list of resources."""

    data: list[Resource[A]]


class ErrorObject(msgspec.Struct, kw_only=True):
    """One entry of a JSON:API ``errors`` list."""

    status: Any = None
    title: str | None = None
    detail: str | None = None


class ErrorDocument(msgspec.Struct, kw_only=True):
    errors: list[ErrorObject] = []


class Token(msgspec.Struct, kw_only=True):
    """The OAuth client-credentials answer of ``auth.jebbit.com/oauth/token``."""

    access_token: str
    expires_in: int = 86400
    token_type: str = "Bearer"
    scope: str = ""


def new_resource(type_: str, attributes: msgspec.Struct) -> bytes:
    """The request document that creates or updates a resource (unset attributes left out)."""
    fields = {k: v for k, v in msgspec.structs.asdict(attributes).items() if v is not None}
    return msgspec.json.encode({"data": {"type": type_, "attributes": fields}})
