"""The directory tables: SCIM resources, their searchable attribute values and group members.

``scim_resources`` keeps each User and Group document exactly as the IdP sent
it (docs/rules.md#directory-mirrors-the-idp), plus the columns every IdP looks resources up by.
``scim_attribute_values`` indexes every other leaf value of a document, one
row per value, so that any RFC 7644 section 3.4.2.2 filter runs as SQL.
``group_members`` holds memberships as rows, so that membership changes are
set operations (RFC 7644 section 3.5.2) and never rewrite a member list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from connector.db.base import Base, UTCDateTime, table_of


class ScimResource(Base):
    """One User or Group of one organization.

    ``name_key`` is the lower-cased userName (User) or displayName (Group):
    the unique key RFC 7643 section 4 and the IdPs expect to be
    case-insensitive. The unique constraint also settles racing creates.
    """

    __tablename__ = "scim_resources"
    __table_args__ = (
        UniqueConstraint("org_id", "kind", "name_key", name="uq_scim_resources_name"),
        Index("ix_scim_resources_external_id", "org_id", "kind", "external_id"),
        Index("ix_scim_resources_created", "org_id", "kind", "created_at"),
        # Every user of a tenant in id order, a page at a time (GET /api/v1/access):
        # a range of this index, whatever the other tenants hold.
        Index("ix_scim_resources_kind_id", "org_id", "kind", "id"),
        # No index on modified_at, on purpose: every write bumps it, and an
        # index on it would stop PostgreSQL from updating rows in place (HOT).
        # A group PATCHed in batches of 50 then piles up dead index entries
        # and each batch gets slower (measured: 2x over 400 batches without
        # autovacuum, flat without the index). meta.lastModified filters
        # still run in SQL, over the tenant's rows.
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(Text)
    name_key: Mapped[str] = mapped_column(String(512))
    external_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    active: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScimAttributeValue(Base):
    """One leaf value of a resource document, typed for comparison.

    ``path`` is the lower-cased canonical attribute path (``emails.value``,
    ``name.givenname``, or a URN-qualified extension path). ``element`` is the
    position within a multi-valued attribute, so that the sub-conditions of a
    value path such as ``emails[type eq "work" and value co "@x"]`` hold on
    the same element; single-valued attributes use 0.
    """

    __tablename__ = "scim_attribute_values"
    __table_args__ = (
        Index("ix_scim_attribute_values_lookup", "org_id", "path", "value_key"),
        Index("ix_scim_attribute_values_resource", "resource_id", "path", "element"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    resource_id: Mapped[str] = mapped_column(ForeignKey("scim_resources.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(300))
    element: Mapped[int] = mapped_column(Integer, default=0)
    value_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    value_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    value_number: Mapped[float | None] = mapped_column(Float, nullable=True)
    value_bool: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    value_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class GroupMember(Base):
    """A user's membership of a group (RFC 7643 section 4.2 ``members``).

    ``display`` is the member's label as the IdP sent it (``members.display``),
    or NULL: the store then shows the user's displayName else userName.
    """

    __tablename__ = "group_members"
    __table_args__ = (Index("ix_group_members_user", "user_id", "group_id"),)

    group_id: Mapped[str] = mapped_column(
        ForeignKey("scim_resources.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("scim_resources.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[int] = mapped_column(Integer)
    display: Mapped[str | None] = mapped_column(String(512), nullable=True)


class ScimExtension(Base):
    """A User schema extension an organization declared (RFC 7643 sections 3.3 and 7).

    ``document`` is the Schema resource as declared; ``urn_key`` its id
    lower-cased (URNs compare case-insensitively). The organization's
    ``schema_version`` is bumped with every declaration, so that a request
    learns from its credential whether the models it caches are current.
    """

    __tablename__ = "scim_extensions"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    urn_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    declared_by: Mapped[str] = mapped_column(String(200))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime())


# The tables themselves, for statements built in Core: an ORM-annotated column
# anywhere in a statement sends every execution through the ORM's compile
# step, which on the store's small indexed queries costs about as much as the
# query itself.
RESOURCES = table_of(ScimResource)
ATTRIBUTE_VALUES = table_of(ScimAttributeValue)
GROUP_MEMBERS = table_of(GroupMember)
EXTENSIONS = table_of(ScimExtension)
