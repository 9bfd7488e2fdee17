"""One writer of an organization's access at a time (DESIGN.md rule 3, issue 3 "Consistency").

Counting Owners and then seating one is only safe if no other transaction
can change who qualifies in between, whichever app instance runs it. Every
transaction that may change derived access therefore takes the
organization's lock first, before it touches the directory, so that locks
are always taken in the same order and never deadlock:

- PostgreSQL: ``SELECT ... FOR NO KEY UPDATE`` on the ``organizations`` row.
  It queues writers of the same organization and nothing else: foreign-key
  checks of inserts that name the organization take ``FOR KEY SHARE``, which
  it does not block.
- SQLite: every transaction already begins with ``BEGIN IMMEDIATE``
  (:mod:`connector.db.engine`), which serializes writers of the whole database;
  SQLAlchemy would drop ``FOR UPDATE`` there anyway.

The ``owner_seats`` primary key ``(org_id, seat)`` with ``seat IN (1, 2)``
refuses a third seat even if this lock were forgotten.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.tenancy.tables import Organization


def lock_org_for_write(session: Session, org_id: int) -> None:
    """Take organization ``org_id``'s write lock until the transaction ends (no-op on SQLite)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        select(Organization.id).where(Organization.id == org_id).with_for_update(key_share=True)
    )
