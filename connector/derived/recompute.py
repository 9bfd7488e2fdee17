"""Derived access recomputed after a change, in the change's transaction (docs/rules.md).

:func:`recompute` is the one path every change takes: a SCIM write (through
:mod:`connector.provisioning`), a manual grant, a product state, a mapping.
It reads the facts of the users the change touched, re-seats Owners with
:func:`connector.access.owners.seat_owners` when the change can move a seat
(then with the seat holders' facts too), derives each touched user's access
with :func:`connector.access.derive.derive_access`, and stores the
snapshots, the seats and queue, the audit entries and the product events, all
in the caller's transaction.

The caller holds the organization's rules (shared or exclusive) and the
recomputed users' row locks (:mod:`connector.derived.locks`); this function
takes the seat lock itself, only when the seats can move.

Users who become Owner candidates in the same change queue in the order they
were provisioned (oldest first): the store reports a membership delta as a
set, and the order of provisioning is the first-come order IT can see.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningDelete

from connector.access.changes import AccessChange, access_change, effective
from connector.access.derive import AccessContext, DerivedAccess, derive_access, qualifies_as_owner
from connector.access.owners import (
    OwnerEvent,
    OwnerEventKind,
    OwnerOutcome,
    OwnerSeats,
    seat_owners,
)
from connector.access.roles import Role
from connector.db import dialect as sql
from connector.db.base import utcnow
from connector.derived.facts import (
    DirectoryUser,
    OrgRules,
    StoredSeats,
    load_rules,
    load_seats,
    load_snapshots,
    load_user_names,
    load_users,
    load_users_and_snapshots,
)
from connector.derived.locks import lock_seats
from connector.derived.tables import ACCESS_SNAPSHOTS, OWNER_HOLDS, OWNER_SEATS
from connector.trail.cause import Cause
from connector.trail.journal import Journal

ACCESS_CHANGED = "access.changed"


@dataclass(frozen=True)
class UserChange:
    """One user's access change, with the name the audit trail and previews show."""

    user_name: str | None
    change: AccessChange

    @property
    def user_id(self) -> str:
        return self.change.user_id

    def to_json(self) -> dict[str, Any]:
        return {"userName": self.user_name, **self.change.to_json()}


@dataclass(frozen=True)
class Recomputed:
    """What one recomputation did: the access changes and the Owner seating.

    When only new users who cannot be Owners were derived, the seats were not
    read and ``owners`` shows none, unchanged.
    """

    changes: tuple[UserChange, ...]
    owners: OwnerOutcome


def recompute(
    session: Session,
    org_id: int,
    user_ids: Iterable[str],
    *,
    cause: Cause,
    rules: OrgRules | None = None,
    deleted: Mapping[str, str | None] | None = None,
    created: Iterable[DirectoryUser] = (),
    known: Iterable[DirectoryUser] = (),
    journal: Journal | None = None,
    now: datetime | None = None,
) -> Recomputed:
    """Derive again the access of ``user_ids`` (and of whoever the Owner seating moves).

    ``deleted``: users just removed from the directory, with their userName;
    their seat or queue place is freed and their snapshot dropped.
    ``created``: users just added to the directory
    (:func:`~connector.derived.facts.user_from_document`), derived without
    reading anything of theirs. ``known``: existing users whose facts the
    caller already holds (a leaver, whose access is none whatever their
    groups): their facts are not read again, their snapshot is. The
    snapshots, audit entries and events go to ``journal`` when given (the
    caller writes it), else are written here.
    Costs a fixed number of queries plus O(len(user_ids) + Owner queue) rows.
    """
    moment = now or utcnow()
    rules = rules or load_rules(session, org_id)
    context = rules.context
    gone = frozenset(deleted or {})
    fresh = {user.facts.user_id: user for user in created}
    given = {user.facts.user_id: user for user in known}
    wanted = list(dict.fromkeys(user for user in [*user_ids, *given, *fresh] if user not in gone))
    unread = set(wanted) - fresh.keys() - given.keys()
    read, read_snapshots = load_users_and_snapshots(session, org_id, unread, rules)
    users = {**read, **given, **fresh}
    read_before = [user for user in wanted if user in users and user not in fresh]
    # The users just read came with their snapshots; the others' are read now.
    before = {user: read_snapshots[user] for user in read_before if user in read_snapshots}
    before.update(
        load_snapshots(session, org_id, [user for user in read_before if user not in read])
    )
    before.update(drop_snapshots(session, org_id, sorted(gone)))
    stored = StoredSeats(OwnerSeats(), frozenset())
    if _moves_owners(users.values(), before.values(), context):
        lock_seats(session, org_id)
        stored = load_seats(session, org_id)
        holders = set(stored.known) - users.keys() - gone - stored.vanished
        users.update(load_users(session, org_id, holders, rules))
        # A writer that held the seats before us may have moved these users' standing.
        before.update(load_snapshots(session, org_id, read_before))
        before.update(drop_snapshots(session, org_id, sorted(stored.vanished)))
    outcome = seat(stored, users, wanted, context, left=gone, now=moment)
    affected = sorted(
        user for user in outcome.affected_users if user in users and user not in wanted
    )
    unread_before = [user for user in affected if user not in before]
    before.update(load_snapshots(session, org_id, unread_before))
    derive_ids = [user for user in wanted if user in users] + affected
    removed_ids = sorted(gone | stored.vanished)
    after = {
        user: derive_access(users[user].facts, context, outcome.after.standing(user))
        for user in derive_ids
    }
    names = {user: users[user].user_name for user in derive_ids}
    names.update({user: name for user, name in (deleted or {}).items() if name is not None})
    changes = diff_access(before, after, names)
    changes += removed_access(before, removed_ids, names)
    save_seats(session, org_id, outcome.before, outcome.after, now=moment)
    written = Journal() if journal is None else journal
    save_snapshots(written, before, after)
    record_owner_events(session, org_id, outcome, cause, written, names)
    record_access_changes(changes, after, cause, written)
    if journal is None:
        written.write(session, org_id)
    return Recomputed(tuple(changes), outcome)


def _moves_owners(
    users: Iterable[DirectoryUser], before: Iterable[DerivedAccess], context: AccessContext
) -> bool:
    """Whether a change of these users can move an Owner seat or queue place.

    Only when one of them qualifies as an Owner now, or had a seat or a place
    in the queue before (docs/rules.md#owner-cap): every other change leaves
    the seats alone, and so neither reads nor locks them.
    """
    return any(qualifies_as_owner(user.facts, context) for user in users) or any(
        access.role is Role.OWNER or access.held or access.kept_as_last_owner for access in before
    )


def seat(
    stored: StoredSeats,
    users: Mapping[str, DirectoryUser],
    changed: Sequence[str],
    context: AccessContext,
    *,
    left: Collection[str] = (),
    now: datetime,
) -> OwnerOutcome:
    """The two-Owner cap after a change (docs/rules.md#owner-cap).

    Seat and queue holders keep their places while they still qualify; the
    changed users who newly qualify queue behind them, oldest first.
    Leavers are the deleted, the vanished and every inactive user at hand.
    """
    known = set(stored.known)

    def qualifies(user: str) -> bool:
        found = users.get(user)
        return found is not None and qualifies_as_owner(found.facts, context)

    holders = [user for user in stored.known if qualifies(user)]
    newcomers = sorted(
        (user for user in set(changed) - known if qualifies(user)),
        key=lambda user: (users[user].created_at, user),
    )
    leavers = set(left) | stored.vanished
    leavers |= {user for user, found in users.items() if not found.facts.active}
    leavers |= known - set(users)
    return seat_owners(stored.seats, holders + newcomers, leavers, now=now)


def diff_access(
    before: Mapping[str, DerivedAccess],
    after: Mapping[str, DerivedAccess],
    names: Mapping[str, str],
) -> list[UserChange]:
    changes = []
    for user, access in after.items():
        change = access_change(before.get(user), access)
        if change is not None:
            changes.append(UserChange(names.get(user), change))
    return changes


def removed_access(
    before: Mapping[str, DerivedAccess], user_ids: Iterable[str], names: Mapping[str, str]
) -> list[UserChange]:
    """What users deleted from the directory lost (docs/rules.md#leavers)."""
    changes = []
    for user in user_ids:
        change = access_change(before.get(user), DerivedAccess(user, active=False, role=None))
        if change is not None:
            changes.append(UserChange(names.get(user), change))
    return changes


_SNAPSHOTS = ACCESS_SNAPSHOTS
_SEATS = OWNER_SEATS
_HOLDS = OWNER_HOLDS


def save_snapshots(
    journal: Journal, before: Mapping[str, DerivedAccess], after: Mapping[str, DerivedAccess]
) -> None:
    """Store each derived access that differs from its snapshot, with the journal."""
    for user, access in after.items():
        data = access.to_json()
        previous = before.get(user)
        if previous is None:
            journal.snapshot(user, data, new=True)
        elif previous.to_json() != data:
            journal.snapshot(user, data, new=False)


@functools.cache
def _drop_snapshots(dialect: str) -> ReturningDelete[tuple[str, Any]]:
    return (
        delete(_SNAPSHOTS)
        .where(
            _SNAPSHOTS.c.org_id == bindparam("org_id"),
            sql.in_bound_ids(dialect, _SNAPSHOTS.c.user_id, "ids"),
        )
        .returning(_SNAPSHOTS.c.user_id, _SNAPSHOTS.c.access)
    )


def drop_snapshots(
    session: Session, org_id: int, user_ids: Collection[str]
) -> dict[str, DerivedAccess]:
    """Delete the snapshots of ``user_ids``, returning them: what those users had."""
    if not user_ids:
        return {}
    dialect = session.get_bind().dialect.name
    rows = session.execute(
        _drop_snapshots(dialect),
        {"org_id": org_id, "ids": sql.bound_ids(dialect, sorted(user_ids))},
    )
    return {user_id: DerivedAccess.from_json(access) for user_id, access in rows}


def save_seats(
    session: Session, org_id: int, before: OwnerSeats, after: OwnerSeats, *, now: datetime
) -> None:
    """Write the seats and queue that changed; the primary key refuses a third seat."""
    if before == after:
        return
    old = {seat.number: seat for seat in before.seats}
    new = {seat.number: seat for seat in after.seats}
    changed = sorted(
        number for number in old.keys() | new.keys() if old.get(number) != new.get(number)
    )
    if changed:
        session.execute(delete(_SEATS).where(_SEATS.c.org_id == org_id, _SEATS.c.seat.in_(changed)))
        rows = [
            {
                "org_id": org_id,
                "seat": number,
                "user_id": new[number].user_id,
                "seated_at": new[number].since,
                "kept_as_last": new[number].kept_as_last,
            }
            for number in changed
            if number in new
        ]
        if rows:
            session.execute(insert(_SEATS), rows)
    if before.queue != after.queue:
        # Positions are renumbered from 1; the queue is short (would-be third Owners).
        session.execute(delete(_HOLDS).where(_HOLDS.c.org_id == org_id))
        if after.queue:
            session.execute(
                insert(_HOLDS),
                [
                    {
                        "org_id": org_id,
                        "user_id": held.user_id,
                        "position": position,
                        "held_at": held.since,
                    }
                    for position, held in enumerate(after.queue, start=1)
                ],
            )


def owner_action(kind: OwnerEventKind) -> str:
    """``owner_seated`` as the audit trail and events name it: ``owner.seated``."""
    subject, _, what = kind.value.partition("_")
    return f"{subject}.{what}"


def record_owner_events(
    session: Session,
    org_id: int,
    outcome: OwnerOutcome,
    cause: Cause,
    journal: Journal,
    names: Mapping[str, str] | None = None,
) -> None:
    """Audit and announce each step of the Owner seating (docs/rules.md#audit)."""
    if not outcome.events:
        return
    known = dict(names or {})
    missing = {event.user_id for event in outcome.events if event.user_id} - known.keys()
    known.update(load_user_names(session, org_id, missing))
    for event in outcome.events:
        data = owner_event_json(event, outcome, known)
        action = owner_action(event.kind)
        journal.audit(
            cause,
            action,
            f"user:{event.user_id}" if event.user_id else "org",
            after=data,
            reason=f"{cause.reason}: {event.reason}",
        )
        journal.announce(action, event.user_id or f"org:{org_id}", data)


def owner_event_json(
    event: OwnerEvent, outcome: OwnerOutcome, names: Mapping[str, str]
) -> dict[str, Any]:
    data = event.to_json()
    if event.user_id is not None:
        data["userName"] = names.get(event.user_id)
        position = outcome.after.queue_position(event.user_id)
        if position is not None:
            data["queue_position"] = position
    data["owners"] = list(outcome.after.owner_ids)
    return data


def change_reason(cause: Cause, change: AccessChange) -> str:
    """The request, then the rules behind the change: ``PATCH /Groups/1; via rule 1 (...)``."""
    if not change.causes:
        return cause.reason
    return f"{cause.reason}; via " + ", ".join(source.describe() for source in change.causes)


def record_access_changes(
    changes: Iterable[UserChange],
    after: Mapping[str, DerivedAccess],
    cause: Cause,
    journal: Journal,
) -> None:
    """An audit entry and an ``access.changed`` event per user whose effective access changed."""
    for item in changes:
        change = item.change
        journal.audit(
            cause,
            ACCESS_CHANGED,
            f"user:{change.user_id}",
            change.before,
            change.after,
            reason=change_reason(cause, change),
        )
        journal.announce(
            ACCESS_CHANGED,
            change.user_id,
            {
                "user_id": change.user_id,
                "userName": item.user_name,
                "changed": sorted(change.after),
                "access": effective(after.get(change.user_id)),
            },
        )
