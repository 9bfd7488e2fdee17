"""The provisioning log: every SCIM request an organization's IdP makes, and its outcome.

One row per request attributed to an organization (its credential was
recognized, even when refused as revoked, expired, of another scope or over
the rate limit): when, which credential, method, path and query, status,
``scimType`` and detail of a SCIM Error (RFC 7644 section 3.12), duration, the
resource it touched and the request id header the IdP sent. Never a request
body, never a token: the row says what happened, not what was sent.

Unlike the audit trail, rows are written outside the request's transaction
(:mod:`connector.trail.request_recorder` batches them) and expire: rows older
than their organization's retention are pruned in small batches
(:func:`connector.trail.retention.prune`).
:func:`query_requests` is the one read used by ``hub-scim log`` and the console.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from connector.db.base import Base, UTCDateTime, table_of
from connector.directory.tables import RESOURCES

MAX_PATH_LENGTH = 2000
MAX_DETAIL_LENGTH = 1000
MAX_REQUEST_ID_LENGTH = 200
MAX_PAGE = 1000


class ScimRequestEntry(Base):
    """One SCIM request of one organization's IdP."""

    __tablename__ = "scim_request_log"
    __table_args__ = (
        # Newest first per organization, paged by id.
        Index("ix_scim_request_log_org_id_id", "org_id", "id"),
        # One user's or group's requests.
        Index("ix_scim_request_log_org_resource", "org_id", "resource_id", "id"),
        # The oldest rows of every organization (retention walks the one above).
        Index("ix_scim_request_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    credential_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(MAX_PATH_LENGTH))
    status: Mapped[int] = mapped_column(Integer)
    scim_type: Mapped[str | None] = mapped_column(String(50), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)
    resource_kind: Mapped[str | None] = mapped_column(String(10), nullable=True)
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idp_request_id: Mapped[str | None] = mapped_column(String(MAX_REQUEST_ID_LENGTH), nullable=True)


SCIM_REQUEST_LOG = table_of(ScimRequestEntry)
_APPEND = insert(SCIM_REQUEST_LOG)


@dataclass(frozen=True)
class LoggedRequest:
    """One request as recorded; ``id`` is 0 until the row is written."""

    org_id: int
    at: datetime
    credential_id: str | None
    method: str
    path: str
    status: int
    duration_ms: float
    scim_type: str | None = None
    detail: str | None = None
    resource_kind: str | None = None
    resource_id: str | None = None
    idp_request_id: str | None = None
    id: int = 0

    @property
    def failed(self) -> bool:
        return self.status >= 400

    def row(self) -> dict[str, Any]:
        """The values to insert, cut to the columns' lengths."""
        values = asdict(self)
        del values["id"]
        values["path"] = self.path[:MAX_PATH_LENGTH]
        values["detail"] = None if self.detail is None else self.detail[:MAX_DETAIL_LENGTH]
        values["scim_type"] = None if self.scim_type is None else self.scim_type[:50]
        values["resource_id"] = None if self.resource_id is None else self.resource_id[:64]
        if self.idp_request_id is not None:
            values["idp_request_id"] = self.idp_request_id[:MAX_REQUEST_ID_LENGTH]
        return values

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "credential_id": self.credential_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "scim_type": self.scim_type,
            "detail": self.detail,
            "duration_ms": self.duration_ms,
            "resource": (
                {"kind": self.resource_kind, "id": self.resource_id}
                if self.resource_kind or self.resource_id
                else None
            ),
            "idp_request_id": self.idp_request_id,
        }


def append(connection: Connection, requests: Sequence[LoggedRequest]) -> None:
    """Insert ``requests`` in one statement, in the caller's transaction."""
    if requests:
        connection.execute(_APPEND, [request.row() for request in requests])


@dataclass(frozen=True)
class RequestLogFilter:
    """What the provisioning log is narrowed to; every field is optional.

    ``user`` is a user's id or userName (case-insensitive, RFC 7643 section
    4.1.1), matched against the resource each request touched.
    """

    failed: bool = False
    status: int | None = None
    user: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class RequestLogPage:
    """Newest first; ``next_before`` continues the listing (None: nothing older)."""

    requests: list[LoggedRequest]
    next_before: int | None


def query_requests(
    session: Session,
    org_id: int,
    where: RequestLogFilter | None = None,
    *,
    before: int | None = None,
    limit: int = 100,
) -> RequestLogPage:
    """One page of the organization's provisioning log, newest first, paged by id.

    ``before`` is the ``next_before`` of the previous page. Every filter runs
    in SQL on the organization's rows.
    """
    where = where or RequestLogFilter()
    limit = max(1, min(limit, MAX_PAGE))
    table = SCIM_REQUEST_LOG
    query = select(table).where(table.c.org_id == org_id)
    if before is not None:
        query = query.where(table.c.id < before)
    if where.failed:
        query = query.where(table.c.status >= 400)
    if where.status is not None:
        query = query.where(table.c.status == where.status)
    if where.since is not None:
        query = query.where(table.c.at >= where.since)
    if where.until is not None:
        query = query.where(table.c.at < where.until)
    if where.user is not None:
        query = query.where(table.c.resource_id.in_(_user_ids(session, org_id, where.user)))
    rows = session.execute(query.order_by(table.c.id.desc()).limit(limit + 1)).all()
    page = [_logged(row) for row in rows[:limit]]
    return RequestLogPage(page, page[-1].id if len(rows) > limit else None)


def _user_ids(session: Session, org_id: int, user: str) -> list[str]:
    """The id itself, and the id of the user whose userName it is, if any."""
    named = session.scalars(
        select(RESOURCES.c.id).where(
            RESOURCES.c.org_id == org_id,
            RESOURCES.c.kind == "User",
            # The form the store keys userNames by (connector.directory.indexing).
            RESOURCES.c.name_key == unicodedata.normalize("NFC", user).lower(),
        )
    ).all()
    return [user, *named]


def _logged(row: Any) -> LoggedRequest:
    return LoggedRequest(
        id=row.id,
        org_id=row.org_id,
        at=row.at,
        credential_id=row.credential_id,
        method=row.method,
        path=row.path,
        status=row.status,
        duration_ms=row.duration_ms,
        scim_type=row.scim_type,
        detail=row.detail,
        resource_kind=row.resource_kind,
        resource_id=row.resource_id,
        idp_request_id=row.idp_request_id,
    )
