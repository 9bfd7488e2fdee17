"""Tables of derived and IT-managed access state (docs/rules.md).

``owner_seats``, ``owner_holds`` and ``access_snapshots`` name their user
without a foreign key: the store deletes a user's row before telling the
access engine (:mod:`connector.directory.listener`), and the engine needs the
seat, the queue place and the last derived access then, to free the seat,
seat the next in line and audit what the user lost. The engine deletes those
rows itself, and treats a seat whose user no longer exists as freed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from connector.db.base import Base, UTCDateTime, table_of, utcnow


class MappingDocument(Base):
    """The mapping file in force for one organization, kept verbatim for `mapping show`."""

    __tablename__ = "mapping_documents"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(Text)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    applied_by: Mapped[str] = mapped_column(String(200))


class GroupBinding(Base):
    """A mapping rule's group reference bound to the group it first matched.

    Binding by id keeps a rule attached to its group when the IdP renames it.
    ``ref_key`` is the rule's ``group`` value, lower-cased.
    """

    __tablename__ = "group_bindings"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    ref_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("scim_resources.id", ondelete="CASCADE"))
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProductStateRow(Base):
    """An organization's subscription state for one product; absent means not_subscribed."""

    __tablename__ = "product_states"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    product: Mapped[str] = mapped_column(String(50), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))


class ManualGrant(Base):
    """A product grant given by hand (not by a mapping rule)."""

    __tablename__ = "manual_grants"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("scim_resources.id", ondelete="CASCADE"), primary_key=True
    )
    product: Mapped[str] = mapped_column(String(50), primary_key=True)
    product_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OwnerSeat(Base):
    """One of an organization's two Owner seats (docs/rules.md#owner-cap).

    The primary key (org_id, seat) with ``seat`` in (1, 2) is what makes a
    third Owner impossible whatever the application code does; ``user_id`` is
    unique so one person never holds both seats. ``kept_as_last`` flags a last
    Owner kept after leaving the Owners group (docs/rules.md#last-owner).
    """

    __tablename__ = "owner_seats"
    __table_args__ = (
        CheckConstraint("seat IN (1, 2)", name="seat_number"),
        UniqueConstraint("user_id", name="uq_owner_seats_user_id"),
    )

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    seat: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    user_id: Mapped[str] = mapped_column(String(36))
    seated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kept_as_last: Mapped[bool] = mapped_column(Boolean, default=False)


class OwnerHold(Base):
    """A user the mapping would make a third Owner, waiting first-come for a seat."""

    __tablename__ = "owner_holds"
    __table_args__ = (UniqueConstraint("org_id", "position", name="uq_owner_holds_position"),)

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AccessSnapshot(Base):
    """A user's effective access as last derived: what products read, at once."""

    __tablename__ = "access_snapshots"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    access: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OnboardingDone(Base):
    """A product's onboarding completed by one user: once per user per product, ever."""

    __tablename__ = "onboarding_done"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("scim_resources.id", ondelete="CASCADE"), primary_key=True
    )
    product: Mapped[str] = mapped_column(String(50), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


MAPPINGS = table_of(MappingDocument)
GROUP_BINDINGS = table_of(GroupBinding)
PRODUCT_STATES = table_of(ProductStateRow)
MANUAL_GRANTS = table_of(ManualGrant)
OWNER_SEATS = table_of(OwnerSeat)
OWNER_HOLDS = table_of(OwnerHold)
ACCESS_SNAPSHOTS = table_of(AccessSnapshot)
ONBOARDING = table_of(OnboardingDone)
