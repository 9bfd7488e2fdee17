"""The discovery documents (RFC 7644 section 4, RFC 7643 sections 5 to 7).

Built from the very models requests are validated with, and from the limits
the protocol layer enforces, so that what is advertised is what is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    ETag,
    Filter,
    Group,
    Meta,
    Pagination,
    Patch,
    ResourceType,
    Schema,
    ServiceProviderConfig,
    Sort,
)

from scim.backend import Document, ResourceKind
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas
from scim.resources import ENDPOINTS, EnterpriseUser, User
from scim.settings import ScimSettings

RESOURCE_TYPE_DESCRIPTIONS = {
    ResourceKind.USER: "User Account",
    ResourceKind.GROUP: "Group",
}


def service_provider_config(settings: ScimSettings, base_url: str) -> Document:
    """``/ServiceProviderConfig`` (RFC 7643 section 5), with the limits actually enforced."""
    config = ServiceProviderConfig(
        documentation_uri=settings.documentation_uri,
        patch=Patch(supported=True),
        bulk=Bulk(
            supported=True,
            max_operations=settings.bulk_max_operations,
            max_payload_size=settings.bulk_max_payload_bytes,
        ),
        filter=Filter(supported=True, max_results=settings.max_page_size),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=settings.etag_supported),
        authentication_schemes=[
            scheme
            if isinstance(scheme, AuthenticationScheme)
            else AuthenticationScheme.model_validate(scheme)
            for scheme in settings.authentication_schemes
        ],
        pagination=Pagination(
            cursor=False,
            index=True,
            default_pagination_method=Pagination.DefaultPaginationMethod.index,
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
        ),
        meta=Meta(
            resource_type="ServiceProviderConfig",
            location=f"{base_url}/ServiceProviderConfig",
        ),
    )
    return config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


@lru_cache(maxsize=128)
def resource_types(served: ServedSchemas = DEFAULT_SCHEMAS) -> tuple[ResourceType, ...]:
    """User (with the enterprise and declared extensions) and Group (RFC 7643 section 6)."""
    types = []
    for kind in (ResourceKind.USER, ResourceKind.GROUP):
        resource_type = ResourceType.from_resource(served.model(kind))
        resource_type.description = RESOURCE_TYPE_DESCRIPTIONS[kind]
        resource_type.endpoint = ENDPOINTS[kind]  # type: ignore[assignment]
        types.append(resource_type)
    return tuple(types)


@lru_cache(maxsize=128)
def schemas(served: ServedSchemas = DEFAULT_SCHEMAS) -> tuple[Schema, ...]:
    """The resource schemas, declared extensions and discovery schemas (RFC 7643 sections 7, 8.7).

    A declared extension is published as it was declared.
    """
    core = [model.to_schema() for model in (User, EnterpriseUser, Group)]
    discovery = [model.to_schema() for model in (ServiceProviderConfig, ResourceType, Schema)]
    return (*core, *served.user_extensions, *discovery)


def resource_type_document(resource_type: ResourceType, base_url: str) -> Document:
    described = resource_type.model_copy(
        update={
            "meta": Meta(
                resource_type="ResourceType",
                location=f"{base_url}/ResourceTypes/{resource_type.id}",
            )
        }
    )
    return described.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def schema_document(schema: Schema, base_url: str) -> Document:
    described = schema.model_copy(
        update={"meta": Meta(resource_type="Schema", location=f"{base_url}/Schemas/{schema.id}")}
    )
    return described.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def find_resource_type(name: str, among: Sequence[ResourceType]) -> ResourceType | None:
    """A resource type by id, case-insensitively, among those served."""
    return next(
        (rt for rt in among if str(rt.id).lower() == name.lower()),
        None,
    )


def find_schema(schema_id: str, among: Sequence[Schema]) -> Schema | None:
    """A schema by URN, case-insensitively (RFC 7643 section 8.7: URNs compare so)."""
    return next((s for s in among if str(s.id).lower() == schema_id.lower()), None)


def discovery_list(documents: list[Document]) -> dict[str, Any]:
    """A ListResponse of discovery resources (RFC 7644 section 4: not filtered nor paged)."""
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(documents),
        "startIndex": 1,
        "itemsPerPage": len(documents),
        "Resources": documents,
    }
