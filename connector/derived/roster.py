"""Every user's access, a page at a time, each page stamped with its event position.

What ``GET /api/v1/access`` serves to a product that loads (or reloads) the
whole organization's access, and the guarantee it rests on
(docs/reconciliation.md):

A page is read in ONE consistent snapshot of the database
(:func:`connector.db.engine.read_consistently`), and its ``position`` is the
organization's event counter in that same snapshot. Every change commits its
snapshots and its events together, numbering the events while it holds the
counter's row until commit (:mod:`connector.trail.events`), so the page
shows exactly the state after events ``1..position`` and nothing of any
later one. The client joins pages of different positions with the events
after them (docs/reconciliation.md says how, and proves it).

Users come in id order by keyset (``id > after``), a page at a time, so a
snapshot of 100,000 users never holds more than one page in memory, on
either side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, String, bindparam, select
from sqlalchemy.orm import Session

from connector.access.changes import effective
from connector.access.derive import DerivedAccess
from connector.derived.facts import load_onboarded_of
from connector.derived.queries import access_json, current_accesses
from connector.directory.tables import RESOURCES
from connector.trail.events import EVENT_COUNTERS
from scim.backend import ResourceKind

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class AccessPage:
    """One page of the organization's users, as of event ``position``.

    ``next_after`` is the last user id of the page when users with greater
    ids exist in this snapshot, where the next page starts; ``None`` on the
    last page.
    """

    position: int
    users: tuple[dict[str, Any], ...]
    next_after: str | None


@functools.cache
def users_page_query() -> Select[Any]:
    """Ids and userNames of ``org_id``'s users after id ``after``, at most ``limit``, by id."""
    resource = RESOURCES.c
    return (
        select(resource.id, resource.name)
        .where(
            resource.org_id == bindparam("org_id", type_=Integer()),
            resource.kind == ResourceKind.USER.value,
            resource.id > bindparam("after", type_=String()),
        )
        .order_by(resource.id)
        .limit(bindparam("limit", type_=Integer()))
    )


_POSITION = select(EVENT_COUNTERS.c.last_sequence).where(
    EVENT_COUNTERS.c.org_id == bindparam("org_id")
)


def event_position(session: Session, org_id: int) -> int:
    """The sequence of the organization's last committed event, as this transaction sees it."""
    found = session.execute(_POSITION, {"org_id": org_id}).scalar_one_or_none()
    return 0 if found is None else int(found)


def access_page(session: Session, org_id: int, *, after: str, limit: int) -> AccessPage:
    """The users of ``org_id`` with ids greater than ``after`` (``""``: from the first), at most
    ``limit``, each as the access API shows one user plus ``access``: the effective access in
    exactly the form ``access.changed`` events carry it.

    Reads in the caller's transaction, which must be one consistent snapshot
    (:func:`connector.db.engine.read_consistently`). A fixed number of queries
    whatever the page size; users without a stored snapshot are derived now.
    """
    position = event_position(session, org_id)
    rows = session.execute(
        users_page_query(), {"org_id": org_id, "after": after, "limit": limit + 1}
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [row.id for row in rows]
    accesses = current_accesses(session, org_id, ids)
    onboarded = load_onboarded_of(session, org_id, ids)
    users = tuple(
        _user_row(row.name, accesses[row.id], onboarded.get(row.id, frozenset())) for row in rows
    )
    return AccessPage(position, users, ids[-1] if more else None)


def _user_row(user_name: str, access: DerivedAccess, onboarded: frozenset[str]) -> dict[str, Any]:
    return {**access_json(user_name, access, onboarded), "access": effective(access)}
