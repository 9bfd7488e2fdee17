"""Whether an organization's IdP has ever taken a SCIM role away, or only ever added them.

An IdP that only adds ``roles`` (Entra's ``AppRoleAssignmentsComplex``,
whose PATCHes are ``Add`` operations) never takes a role away, so a user
whose app role is removed in the IdP keeps it, and the access it maps to, in
Hub (docs/entra.md, "App roles instead of groups"). Its writes look alike in
Hub: each one only grows a user's ``roles``. An IdP that asserts the list
(``AssertiveAppRoleAssignmentsComplex``: a ``replace`` of ``roles``), or
sends ``remove``, or a PUT, shrinks it when a role goes.

The write path notes the first user write that added a role value and the
first that took one away, per organization (:func:`note_role_change`); the
health report warns when roles were added and never taken away
(:func:`role_changes_seen`). A row is inserted once and never updated: once
the first of each kind is committed, a note is one ``INSERT .. ON CONFLICT
DO NOTHING`` that waits for no other writer, and only writes that change a
user's role values make one.

The write path sees the user before and after, not the PATCH operations: a
replace that only adds a role reads as an addition. The warning therefore
clears on the first write that takes a role away, which an asserting IdP
sends the first time a role is unassigned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import cast

from sqlalchemy import ForeignKey, String, Table, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from connector.db.base import Base, UTCDateTime, utcnow


class RoleChange(StrEnum):
    ADDED = "added"
    """A write gave a user a role value and took none away."""
    TAKEN_AWAY = "taken_away"
    """A write took a role value away from a user."""


class RoleChangeSeen(Base):
    """The first user write of an organization that changed roles in one way."""

    __tablename__ = "scim_role_changes"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    change: Mapped[str] = mapped_column(String(20), primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # No foreign key: the note outlives the user it names.
    user_id: Mapped[str] = mapped_column(String(36))


ROLE_CHANGES = cast(Table, RoleChangeSeen.__table__)


@dataclass(frozen=True)
class FirstSeen:
    at: datetime
    user_id: str


def note_role_change(
    session: Session, org_id: int, user_id: str, before: frozenset[str], after: frozenset[str]
) -> None:
    """Note how a write changed a user's SCIM role values, if it changed them.

    Call it only for writes whose role values differ; ``before == after``
    writes nothing.
    """
    if before == after:
        return
    change = RoleChange.TAKEN_AWAY if before - after else RoleChange.ADDED
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(ROLE_CHANGES)
        .values(org_id=org_id, change=change.value, first_at=utcnow(), user_id=user_id)
        .on_conflict_do_nothing(index_elements=["org_id", "change"])
    )


def role_changes_seen(session: Session, org_id: int) -> dict[RoleChange, FirstSeen]:
    """The first write of each kind of role change noted in ``org_id``."""
    rows = session.execute(
        select(ROLE_CHANGES.c.change, ROLE_CHANGES.c.first_at, ROLE_CHANGES.c.user_id).where(
            ROLE_CHANGES.c.org_id == org_id
        )
    )
    return {RoleChange(change): FirstSeen(at, user_id) for change, at, user_id in rows}
