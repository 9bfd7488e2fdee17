"""Read-only resource types a service provider publishes: the roles and entitlements it accepts.

RFC 7643 gives a User ``roles`` and ``entitlements`` but no way to learn which
values a service provider accepts. Two clients read them from resource types
of their own, discovered through ``/ResourceTypes``:

- Okta Identity Governance ("Build a SCIM 2.0 server with entitlements"):
  a resource type whose ``schema`` is ``urn:okta:scim:schemas:core:1.0:Role``
  or ``...:Entitlement``, at whatever endpoint it names; Okta lists every
  resource there (paging with ``startIndex``/``count``) and reads ``id``,
  ``displayName``, ``description`` and, for entitlements, ``type``. It
  assigns one by sending its ``id`` as the ``value`` of the User's ``roles``
  or ``entitlements``.
- draft-ietf-scim-roles-entitlements (version 01): ``/Roles`` and
  ``/Entitlements`` with the schemas ``urn:ietf:params:scim:schemas:core:2.0:Role``
  and ``...:Entitlement``, attributes ``value``, ``display``, ``type``,
  ``supported``, ``limitedAssignmentsPermitted``, ``totalAssignmentsPermitted``,
  ``totalAssignmentsUsed``, ``contains`` and ``containedBy``. The draft also
  puts a ``RolesAndEntitlements`` entry in ``/ServiceProviderConfig``; it is
  left out, because strict clients refuse a configuration with an attribute
  RFC 7643 does not define, and the draft's clients find the resource types
  in ``/ResourceTypes`` anyway.

Both are served by one resource type each, at the endpoints both expect:
the resource type's ``schema`` is Okta's URN (what Okta keys on), the IETF
URN is listed as a schema extension, and every resource carries both URNs and
both sets of attributes, flat, as both documents show them. An application
should give each resource its ``value`` as ``id``, so that what Okta sends
back is what the draft's clients send. ``/Schemas`` describes each URN with
its own attributes.

A :class:`Publication` binds one of these types to a callable giving the
current tenant's resources as plain documents; this module filters, sorts,
pages and projects them in memory (they are a handful) and answers them.
Nothing here can write: every other method answers 405.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import ValidationError
from scim2_models import (
    URN,
    Context,
    Mutability,
    NotFoundException,
    Required,
    Resource,
    ResourceType,
    SchemaExtension,
    ScimFilter,
    SearchRequest,
)

from scim.backend import Document
from scim.errors import exception_from_validation_error
from scim.query import page_size, parse_model_filter, search_parameters
from scim.settings import ScimSettings

OKTA_ROLE_SCHEMA = "urn:okta:scim:schemas:core:1.0:Role"
OKTA_ENTITLEMENT_SCHEMA = "urn:okta:scim:schemas:core:1.0:Entitlement"
IETF_ROLE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Role"
IETF_ENTITLEMENT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Entitlement"


class _IetfAttributes(Resource[Any]):
    """The attributes draft-ietf-scim-roles-entitlements gives a role or an entitlement."""

    value: Annotated[str | None, Mutability.read_only, Required.true] = None
    """The value a client sends in the User's attribute to assign it."""

    display: Annotated[str | None, Mutability.read_only] = None
    """A human-readable name, primarily used for display purposes."""

    type: Annotated[str | None, Mutability.read_only] = None
    """A label indicating its function."""

    supported: Annotated[bool | None, Mutability.read_only] = None
    """Whether the service provider currently acts on it when a client assigns it."""

    limited_assignments_permitted: Annotated[bool | None, Mutability.read_only] = None
    """Whether only a limited number of users may hold it."""

    total_assignments_permitted: Annotated[int | None, Mutability.read_only] = None
    """How many users may hold it, when limited."""

    total_assignments_used: Annotated[int | None, Mutability.read_only] = None
    """How many users hold it now, when limited."""

    contained_by: Annotated[list[str] | None, Mutability.read_only] = None
    """Values that grant a superset of what this one grants."""

    contains: Annotated[list[str] | None, Mutability.read_only] = None
    """Values whose rights this one grants too."""


class _OktaAttributes(Resource[Any]):
    """The attributes Okta Identity Governance reads of a role or an entitlement."""

    display_name: Annotated[str | None, Mutability.read_only, Required.true] = None
    """The name shown on the application's Governance tab."""

    description: Annotated[str | None, Mutability.read_only] = None
    """What it gives."""


class IetfRole(_IetfAttributes):
    """Role"""

    __schema__ = URN(IETF_ROLE_SCHEMA)


class IetfEntitlement(_IetfAttributes):
    """Entitlement"""

    __schema__ = URN(IETF_ENTITLEMENT_SCHEMA)


class OktaRole(_OktaAttributes):
    """Role"""

    __schema__ = URN(OKTA_ROLE_SCHEMA)


class OktaEntitlement(_OktaAttributes):
    """Entitlement"""

    __schema__ = URN(OKTA_ENTITLEMENT_SCHEMA)

    type: Annotated[str | None, Mutability.read_only] = None
    """The kind of entitlement, shown by Okta."""


class Role(OktaRole, IetfRole):
    """A role a client may assign: both schemas' attributes, to validate and filter with."""

    __schema__ = URN(OKTA_ROLE_SCHEMA)


class Entitlement(OktaEntitlement, IetfEntitlement):
    """An entitlement a client may assign: both schemas' attributes."""

    __schema__ = URN(OKTA_ENTITLEMENT_SCHEMA)


@dataclass(frozen=True)
class PublishedType:
    """A read-only resource type: its endpoint, its schemas and the model it is served with."""

    id: str
    endpoint: str
    description: str
    model: type[Resource[Any]]
    schemas: tuple[type[Resource[Any]], ...]
    """The first is the resource type's ``schema``, the others its extensions (not required);
    every resource lists all of them, and ``/Schemas`` describes each."""

    @property
    def schema_urns(self) -> list[str]:
        return [str(model.__schema__) for model in self.schemas]

    def resource_type(self) -> ResourceType:
        """Its ``/ResourceTypes`` entry (RFC 7643 section 6)."""
        return ResourceType(
            id=self.id,
            name=self.id,
            description=self.description,
            endpoint=self.endpoint,
            schema_=self.schema_urns[0],
            schema_extensions=[
                SchemaExtension(schema_=urn, required=False) for urn in self.schema_urns[1:]
            ],
        )


ROLES = PublishedType(
    id="Role",
    endpoint="/Roles",
    description="Roles a client may assign in a User's roles",
    model=Role,
    schemas=(OktaRole, IetfRole),
)

ENTITLEMENTS = PublishedType(
    id="Entitlement",
    endpoint="/Entitlements",
    description="Entitlements a client may assign in a User's entitlements",
    model=Entitlement,
    schemas=(OktaEntitlement, IetfEntitlement),
)


@dataclass(frozen=True)
class Publication:
    """A published type and where its resources come from.

    ``documents`` is called once per request, in the request's context (the
    application knows its tenant there), and returns JSON-ready documents in
    the wire form of :attr:`PublishedType.model`, each with its ``id``.
    """

    type: PublishedType
    documents: Callable[[], Sequence[Document]]

    def resources(self) -> list[Resource[Any]]:
        try:
            return [self.type.model.model_validate(document) for document in self.documents()]
        except ValidationError as exc:
            raise exception_from_validation_error(exc) from exc


def list_published(
    publication: Publication,
    payload: Mapping[str, Any],
    settings: ScimSettings,
    base_url: str,
) -> Document:
    """GET on a published endpoint: filtered, sorted and paged (RFC 7644 sections 3.4.2.2-4)."""
    model = publication.type.model
    fields = {key: value for key, value in payload.items() if key != "filter"}
    parameters = search_parameters(fields, model)
    resources = publication.resources()
    if "filter" in payload:
        scim_filter = ScimFilter[model](  # type: ignore[valid-type]
            parse_model_filter(model, payload["filter"], settings)
        )
        resources = [resource for resource in resources if scim_filter.match(resource)]
    if parameters.sort_by is not None:
        resources = parameters.sort(resources)
    start_index = parameters.start_index or 1
    count = page_size(parameters, settings)
    page = resources[start_index - 1 : start_index - 1 + count]
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(resources),
        "startIndex": start_index,
        "itemsPerPage": len(page),
        "Resources": [
            published_document(publication.type, resource, base_url, parameters)
            for resource in page
        ],
    }


def get_published(
    publication: Publication,
    resource_id: str,
    base_url: str,
    parameters: SearchRequest[Any] | None = None,
) -> Document:
    """GET one published resource by ``id`` (RFC 7644 section 3.4.1), or 404."""
    found = next(
        (resource for resource in publication.resources() if resource.id == resource_id), None
    )
    if found is None:
        raise NotFoundException(detail=f"No {publication.type.id} {resource_id!r}")
    return published_document(publication.type, found, base_url, parameters)


def published_document(
    published: PublishedType,
    resource: Resource[Any],
    base_url: str,
    parameters: SearchRequest[Any] | None,
) -> Document:
    """A resource as answered: every schema URN, ``meta``, the projection (RFC 7644 3.9)."""
    dumped = resource.model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters
    )
    document: Document = {"schemas": published.schema_urns, "id": resource.id}
    document["meta"] = {
        "resourceType": published.id,
        "location": f"{base_url}{published.endpoint}/{resource.id}",
    }
    for key, value in dumped.items():
        document.setdefault(key, value)
    return document
