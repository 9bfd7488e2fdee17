"""Tenancy and credential tables: organizations and the tokens that act for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from connector.db.base import Base, UTCDateTime, table_of, utcnow


class Organization(Base):
    """One MSP tenant. Every other row belongs to exactly one (docs/rules.md#words)."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    schema_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped by every declaration of a SCIM schema extension (``scim_extensions``)."""


class Credential(Base):
    """A bearer credential of one organization, kept only as a SHA-256 hash.

    ``scope`` is ``scim`` (the IdP's provisioning service) or ``access``
    (Hub's products asking what a user may do); one is refused where the
    other belongs.
    """

    __tablename__ = "credentials"
    __table_args__ = (Index("ix_credentials_org_scope", "org_id", "scope"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


ORGANIZATIONS = table_of(Organization)
CREDENTIALS = table_of(Credential)
