"""The console's reads that run in SQL: a page of people, a page of audit entries.

People are filtered and paged in the database (a prefix of the userName or an
email, active or not), so that a directory of 100,000 users answers as fast
as one of 100; only the page's rows and their access snapshots are loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, union
from sqlalchemy.orm import Session

from connector.derived.tables import AccessSnapshot
from connector.directory.tables import ScimAttributeValue, ScimResource
from connector.trail.audit import AuditEntry, AuditRecord
from scim.backend import ResourceKind

PAGE_SIZE = 50
# Counting stops here: an exact count of 100,000 filtered rows costs more than
# the page itself, and "more than 10,000" is as useful to IT.
COUNT_CAP = 10_000
_PREFIX_END = "\U0010ffff"


@dataclass(frozen=True)
class PersonRow:
    id: str
    user_name: str
    active: bool
    role: str | None
    held: bool


@dataclass(frozen=True)
class PeoplePage:
    rows: tuple[PersonRow, ...]
    total: int  # at most COUNT_CAP + 1: see ``capped``
    page: int
    has_next: bool

    @property
    def capped(self) -> bool:
        return self.total > COUNT_CAP


def people_page(
    session: Session, org_id: int, *, query: str = "", status: str = "", page: int = 1
) -> PeoplePage:
    """One page of the directory's users, by userName, with their role from the snapshot."""
    scope = [ScimResource.org_id == org_id, ScimResource.kind == ResourceKind.USER.value]
    prefix = query.strip().lower()
    if prefix:
        # Two index range scans joined by UNION: an OR across the two tables
        # would make PostgreSQL scan every user of the organization.
        by_name = select(ScimResource.id).where(
            ScimResource.org_id == org_id,
            ScimResource.kind == ResourceKind.USER.value,
            ScimResource.name_key >= prefix,
            ScimResource.name_key < prefix + _PREFIX_END,
        )
        by_email = select(ScimAttributeValue.resource_id).where(
            ScimAttributeValue.org_id == org_id,
            ScimAttributeValue.path == "emails.value",
            ScimAttributeValue.value_key >= prefix,
            ScimAttributeValue.value_key < prefix + _PREFIX_END,
        )
        scope.append(ScimResource.id.in_(union(by_name, by_email)))
    if status == "active":
        scope.append(ScimResource.active.is_not(False))
    elif status == "inactive":
        scope.append(ScimResource.active.is_(False))
    matching = select(ScimResource.id).where(*scope).limit(COUNT_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(matching)) or 0
    page = max(page, 1)
    listed = (
        select(ScimResource.id, ScimResource.name, ScimResource.active)
        .where(*scope)
        .order_by(ScimResource.name_key)
        .limit(PAGE_SIZE + 1)
        .offset((page - 1) * PAGE_SIZE)
    )
    rows = session.execute(listed).all()
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    ids = [row.id for row in rows]
    snapshots: dict[str, Any] = (
        dict(
            session.execute(
                select(AccessSnapshot.user_id, AccessSnapshot.access).where(
                    AccessSnapshot.user_id.in_(ids)
                )
            ).all()
        )
        if ids
        else {}
    )
    people = []
    for row in rows:
        access: dict[str, Any] = snapshots.get(row.id) or {}
        people.append(
            PersonRow(
                id=row.id,
                user_name=row.name,
                active=row.active is not False,
                role=access.get("role"),
                held=bool(access.get("held")),
            )
        )
    return PeoplePage(tuple(people), total, page, has_next)


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, statement: Select[Any], org_id: int) -> Select[Any]:
        statement = statement.where(AuditEntry.org_id == org_id)
        if self.actor:
            statement = statement.where(AuditEntry.actor == self.actor.strip())
        if self.action:
            action = self.action.strip()
            if action.endswith("*"):
                statement = statement.where(AuditEntry.action.startswith(action[:-1]))
            else:
                statement = statement.where(AuditEntry.action == action)
        if self.target:
            statement = statement.where(AuditEntry.target == self.target.strip())
        if self.since is not None:
            statement = statement.where(AuditEntry.at >= self.since)
        if self.until is not None:
            statement = statement.where(AuditEntry.at < self.until)
        return statement


def _record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        before=row.before,
        after=row.after,
        reason=row.reason,
    )


def audit_page(
    session: Session, org_id: int, audit_filter: AuditFilter, *, before_id: int | None, size: int
) -> list[AuditRecord]:
    """Newest first, keyset-paged by id: ``before_id`` is the last id of the previous page."""
    statement = audit_filter.apply(select(AuditEntry), org_id)
    if before_id is not None:
        statement = statement.where(AuditEntry.id < before_id)
    rows = session.scalars(statement.order_by(AuditEntry.id.desc()).limit(size))
    return [_record(row) for row in rows]


def iter_audit(
    session: Session, org_id: int, audit_filter: AuditFilter, batch: int = 1000
) -> Iterator[AuditRecord]:
    """Every matching entry, oldest first, in keyset-paged batches (for exports)."""
    last = 0
    while True:
        statement = audit_filter.apply(select(AuditEntry), org_id).where(AuditEntry.id > last)
        rows = list(session.scalars(statement.order_by(AuditEntry.id).limit(batch)))
        if not rows:
            return
        for row in rows:
            yield _record(row)
        last = rows[-1].id


def user_audit(session: Session, org_id: int, user_id: str, limit: int = 20) -> list[AuditRecord]:
    """The newest entries whose target is the user."""
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.org_id == org_id, AuditEntry.target == f"user:{user_id}")
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return [_record(row) for row in rows]
