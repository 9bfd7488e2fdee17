"""The locks a change of access takes: as few as the change needs, always in one order.

Derived access must stay right when writes run in parallel, on one instance
or several sharing a database (docs/rules.md#owner-cap), without queueing
unrelated writes behind one another. Each write takes, in this order:

1. **The organization's rules**, shared: every SCIM write and manual grant.
   The mapping, its rule bindings and the product states change only under
   the exclusive form (mapping apply, product state, a group write that binds
   a rule), so what a shared holder reads of them stays true until it commits.
2. **The group** a membership write touches: its row, by the store's version
   bump (:meth:`connector.directory.store.DirectoryStore.bump_group`).
3. **The users whose access is recomputed**, ``FOR NO KEY UPDATE`` on their
   directory rows, in id order, before their memberships are written and
   before their facts are read. Two writers adding one user to two mapped
   groups therefore derive one after the other, and the second sees the
   first's membership: no lost update. Concurrent membership inserts of other
   groups are not blocked (their foreign-key checks take ``FOR KEY SHARE``).
4. **The Owner seats**, only when the change can alter who is an Owner
   candidate: a user recomputed who qualifies, or who had a seat or a place
   in the hold queue. Most writes never take it.
5. **The organization's event counter**, last, by the statement that numbers
   the change's events (:func:`connector.trail.events.next_sequences`), just
   before the commit; a Bulk request numbers the events of all its
   operations at once when it commits (:meth:`ScimWrites.commit
   <connector.provisioning.writes.ScimWrites.commit>`).

On PostgreSQL, 1 and 4 are transaction-level advisory locks
(``pg_advisory_xact_lock``), released at commit or rollback; 2, 3 and 5 are row
locks. On SQLite every writing transaction already holds the database's
write lock (``BEGIN IMMEDIATE``, :mod:`connector.db.engine`), so these are
no-ops there. The ``owner_seats`` primary key ``(org_id, seat)`` with
``seat IN (1, 2)`` refuses a third seat even if a lock were forgotten.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, select
from sqlalchemy.orm import Session

from connector.db import dialect as sql
from connector.directory.tables import RESOURCES
from scim.backend import ResourceKind

# Advisory lock namespaces: the first key of pg_advisory_xact_lock(int, int),
# the organization's id being the second.
_RULES_LOCK = 0x48554201
_SEATS_LOCK = 0x48554202


# Built once: a statement built per call costs about as much CPU as its round trip.
_ORG = bindparam("lock_org_id", type_=Integer)
_LOCK_RULES_SHARED = select(func.pg_advisory_xact_lock_shared(_RULES_LOCK, _ORG))
_LOCK_RULES_EXCLUSIVE = select(func.pg_advisory_xact_lock(_RULES_LOCK, _ORG))
_LOCK_SEATS = select(func.pg_advisory_xact_lock(_SEATS_LOCK, _ORG))


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_rules_shared(session: Session, org_id: int) -> None:
    """Keep the organization's mapping, bindings and product states as read until commit."""
    if _is_postgresql(session):
        session.execute(_LOCK_RULES_SHARED, {"lock_org_id": org_id})


def lock_rules_exclusive(session: Session, org_id: int) -> None:
    """Take the organization's rules for writing: waits for every writer holding them shared."""
    if _is_postgresql(session):
        session.execute(_LOCK_RULES_EXCLUSIVE, {"lock_org_id": org_id})


def lock_seats(session: Session, org_id: int) -> None:
    """Take the organization's Owner seats and hold queue until commit."""
    if _is_postgresql(session):
        session.execute(_LOCK_SEATS, {"lock_org_id": org_id})


@functools.cache
def _lock_users(dialect: str) -> Select[Any]:
    resource = RESOURCES.c
    return (
        select(resource.id)
        .where(
            sql.in_bound_ids(dialect, resource.id, "ids"),
            resource.org_id == bindparam("org_id"),
            resource.kind == ResourceKind.USER.value,
        )
        .order_by(resource.id)
        .with_for_update(key_share=True)
    )


def lock_users(session: Session, org_id: int, user_ids: Collection[str]) -> frozenset[str]:
    """Lock the users of ``org_id`` among ``user_ids``, in id order; answer the ids found.

    An id that names no user of the organization is simply not found (and
    not locked): the caller decides whether that is an error.
    """
    if not user_ids:
        return frozenset()
    dialect = session.get_bind().dialect.name
    ids = sorted(set(user_ids))
    found: list[str] = list(
        session.scalars(
            _lock_users(dialect), {"org_id": org_id, "ids": sql.bound_ids(dialect, ids)}
        )
    )
    return frozenset(found)
