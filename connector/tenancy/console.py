"""The IT console's tables: each organization's OIDC settings, sessions, break-glass links.

Secrets are never stored as given: the OIDC client secret is sealed with the
service's key (:mod:`connector.tenancy.sealing`), session ids and one-time
link tokens are kept as SHA-256 hashes, like bearer credentials.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from connector.db.base import Base, UTCDateTime, utcnow


class ConsoleSso(Base):
    """An organization's OIDC web app for the console (``hub-scim sso set``)."""

    __tablename__ = "console_sso"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(300))
    # Fernet token (AES-128-CBC + HMAC-SHA256) of the client secret.
    client_secret_sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class ConsoleSession(Base):
    """One signed-in browser: revocable, checked against the directory on every request.

    ``user_id`` is NULL for the bootstrap Owner of a break-glass link.
    """

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_org_user", "org_id", "user_id"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    user_name: Mapped[str] = mapped_column(String(512))
    bootstrap: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ConsoleLink(Base):
    """A one-time break-glass sign-in link (``hub-scim console link``)."""

    __tablename__ = "console_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
