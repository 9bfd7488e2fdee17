"""The resource models this service provider serves (RFC 7643 sections 4 and 8.7.1).

Users are the core User schema with the enterprise extension; Groups are the
core Group schema. Two of scim2-models' stock declarations are narrowed so
that valid IdP traffic is not refused:

- ``emails.value`` is a plain string. RFC 7643 section 4.1.2 only says it is a
  string "canonicalized by the service provider", while a strict validator
  refuses the special-use and internal domains (``contoso.local``,
  ``corp.test``) that enterprise directories are full of.
- ``manager.$ref`` is optional. RFC 7643 section 4.3 marks it required, yet
  Okta and Entra ID send the manager as its ``value`` alone.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field
from scim2_models import (
    ComplexAttribute,
    Group,
    Mutability,
    Reference,
    Resource,
)
from scim2_models import Email as _Email
from scim2_models import EnterpriseUser as _EnterpriseUser
from scim2_models import Manager as _Manager
from scim2_models import User as _User

from scim.backend import ResourceKind


class Email(_Email):
    value: str | None = None
    """Email addresses for the user."""


class Manager(_Manager):
    ref: Annotated[Reference["User"] | None, Mutability.read_write] = Field(  # type: ignore[assignment]  # noqa: UP037
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    """The URI of the SCIM resource representing the User's manager."""


class EnterpriseUser(_EnterpriseUser):
    """Enterprise User"""

    manager: Manager | None = None
    """The User's manager.

    A complex type that optionally allows service providers to represent
    organizational hierarchy by referencing the 'id' attribute of another User.
    """


class User(_User[EnterpriseUser]):
    """User Account"""

    emails: list[Email] | None = None  # type: ignore[assignment]
    """Email addresses for the user."""

    Emails: ClassVar[type[ComplexAttribute]] = Email


USER_SCHEMA = str(_User.__schema__)
GROUP_SCHEMA = str(Group.__schema__)
ENTERPRISE_SCHEMA = str(_EnterpriseUser.__schema__)

MODELS: dict[ResourceKind, type[Resource[Any]]] = {
    ResourceKind.USER: User,
    ResourceKind.GROUP: Group,
}
"""The model each resource kind is parsed and serialized with."""

ENDPOINTS: dict[ResourceKind, str] = {
    ResourceKind.USER: "/Users",
    ResourceKind.GROUP: "/Groups",
}
"""Each resource kind's endpoint, relative to the base URL (RFC 7643 section 6)."""

KNOWN_SCHEMAS: dict[ResourceKind, frozenset[str]] = {
    ResourceKind.USER: frozenset({USER_SCHEMA.lower(), ENTERPRISE_SCHEMA.lower()}),
    ResourceKind.GROUP: frozenset({GROUP_SCHEMA.lower()}),
}
"""The schema URNs, lowercased, a resource of each kind may carry."""

MEMBERSHIP_ATTRIBUTE: dict[ResourceKind, str] = {
    ResourceKind.USER: "groups",
    ResourceKind.GROUP: "members",
}
"""The attribute holding a resource's memberships, which may be costly to load."""

NAME_ATTRIBUTE: dict[ResourceKind, str] = {
    ResourceKind.USER: "userName",
    ResourceKind.GROUP: "displayName",
}
"""The attribute naming a resource, unique among its kind (RFC 7643 sections 4.1.1 and 4.2)."""
