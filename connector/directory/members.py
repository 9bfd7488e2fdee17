"""Group membership as set statements over ``group_members`` (RFC 7644 section 3.5.2).

A delta naming k members costs O(k) statements' worth of work whatever the
size of the group: the k ids are validated in one query, only missing pairs
are inserted and only named pairs deleted, each statement reporting exactly
the rows it changed (RETURNING) so the caller learns the exact delta.
A replacement set is applied as its difference against the stored set, in SQL.

Each row keeps the member's ``display`` label as the client sent it (RFC 7643
section 4.2), or NULL. Labels are written with the k named members: on
insert, and by one UPDATE of the named members whose stored label differs,
so a PUT that changes one label rewrites one row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from scim2_models import InvalidValueException
from sqlalchemy import ColumnElement, Update, delete, exists, insert, literal, select, update
from sqlalchemy.orm import Session

from connector.db import dialect as sql
from connector.directory.indexing import KEY_LENGTH, check_storable, storable
from connector.directory.tables import GROUP_MEMBERS, RESOURCES
from scim.backend import MemberChanges, ResourceKind

_NAMED_IN_ERROR = 5


def check_member_values(changes: MemberChanges) -> set[str]:
    """Check what the store keeps of a delta, before the database: answer the ids to add.

    Labels and ids must be storable (:mod:`connector.directory.indexing`),
    else ``invalidValue``.
    """
    check_labels(changes.display)
    wanted = set(changes.add)
    if changes.replace is not None:
        wanted |= changes.replace
    if wanted:
        check_storable({"members": sorted(wanted)})
    return wanted


def unknown_members(unknown: Collection[str]) -> InvalidValueException:
    """The ``invalidValue`` error for ids that name no User of the organization."""
    listed = sorted(unknown)
    named = ", ".join(repr(member) for member in listed[:_NAMED_IN_ERROR])
    hidden = len(listed) - _NAMED_IN_ERROR
    more = f" and {hidden} more" if hidden > 0 else ""
    return InvalidValueException(
        detail=f"members: {named}{more} do not name a User of this organization"
    )


def check_member_ids(session: Session, org_id: int, changes: MemberChanges) -> None:
    """Every id to add or to keep names a User of this organization, else ``invalidValue``.

    One query for all ids; the users found are share-locked on PostgreSQL
    (``FOR KEY SHARE``) so that none can be deleted before this transaction
    inserts its membership.
    """
    wanted = check_member_values(changes)
    if not wanted:
        return
    dialect = session.get_bind().dialect.name
    # By primary key alone, tenant and kind checked on the k rows found: a
    # tenant-wide index never looks cheaper to a planner short of statistics.
    rows = session.execute(
        select(RESOURCES.c.id, RESOURCES.c.org_id, RESOURCES.c.kind)
        .where(sql.in_ids(dialect, RESOURCES.c.id, wanted))
        .with_for_update(read=True, key_share=True)
    )
    found = {
        user_id
        for user_id, owner, kind in rows
        if owner == org_id and kind == ResourceKind.USER.value
    }
    if wanted - found:
        raise unknown_members(wanted - found)


def check_labels(labels: Mapping[str, str]) -> None:
    """Each ``members.display`` fits ``group_members.display``, else ``invalidValue``."""
    check_storable({"members.display": list(labels.values())})
    for member_id, label in labels.items():
        if len(label) > KEY_LENGTH:
            raise InvalidValueException(
                detail=f"members: the display of {member_id!r} is longer than {KEY_LENGTH} "
                "characters, which cannot be stored"
            )


def apply_member_changes(
    session: Session, org_id: int, group_id: str, changes: MemberChanges
) -> tuple[set[str], set[str]]:
    """Apply a checked delta in the order MemberChanges documents; answer (added, removed).

    The sets are net: a member removed and added back by the same delta is in
    neither. A label change alone is in neither either: it changes no access.
    """
    dialect = session.get_bind().dialect.name
    member = GROUP_MEMBERS.c
    of_group = member.group_id == group_id
    removed: set[str] = set()
    if changes.replace is not None:
        removed |= _deleted(
            session, of_group, sql.not_in_ids(dialect, member.user_id, changes.replace)
        )
    if changes.remove_all:
        removed |= _deleted(session, of_group)
    named = {user_id for user_id in changes.remove if storable(user_id)}
    if named:
        removed |= _deleted(session, of_group, sql.in_ids(dialect, member.user_id, named))
    wanted = set(changes.add)
    kept: frozenset[str] = frozenset()
    if changes.replace is not None and not changes.remove_all:
        kept = changes.replace - changes.remove
        wanted |= kept
    # A kept member of the new set ends with exactly the label sent, or none;
    # an added one changes label only when one was sent (MemberChanges).
    relabelled = {user_id: changes.display.get(user_id) for user_id in kept}
    relabelled |= {
        user_id: changes.display[user_id]
        for user_id in changes.add - changes.remove
        if user_id in changes.display
    }
    if relabelled and not changes.remove_all:
        session.execute(relabel_statement(dialect, group_id, relabelled))
    labels = {user_id: changes.display.get(user_id) for user_id in wanted}
    inserted = _inserted(session, dialect, org_id, group_id, labels) if labels else set()
    return inserted - removed, removed - inserted


def relabel_statement(dialect: str, group_id: str, labels: Mapping[str, str | None]) -> Update:
    """UPDATE the named members' stored labels, only where they differ: O(k) rows."""
    member = GROUP_MEMBERS.c
    wanted = sql.labelled_id_table(dialect, labels)
    return (
        update(GROUP_MEMBERS)
        .where(
            member.group_id == group_id,
            sql.in_ids(dialect, member.user_id, labels),
            member.user_id == wanted.c.id,
            member.display.is_distinct_from(wanted.c.label),
        )
        .values(display=wanted.c.label)
    )


def _deleted(session: Session, *conditions: ColumnElement[bool]) -> set[str]:
    statement = delete(GROUP_MEMBERS).where(*conditions).returning(GROUP_MEMBERS.c.user_id)
    return set(session.scalars(statement))


def _inserted(
    session: Session,
    dialect: str,
    org_id: int,
    group_id: str,
    labels: Mapping[str, str | None],
) -> set[str]:
    """Insert the pairs not stored yet, labelled, as one INSERT ... SELECT ... WHERE NOT EXISTS."""
    member = GROUP_MEMBERS.c
    wanted = sql.labelled_id_table(dialect, labels)
    missing = select(literal(group_id), wanted.c.id, literal(org_id), wanted.c.label).where(
        ~exists().where(member.group_id == group_id, member.user_id == wanted.c.id)
    )
    statement = (
        insert(GROUP_MEMBERS)
        .from_select(["group_id", "user_id", "org_id", "display"], missing)
        .returning(member.user_id)
    )
    return set(session.scalars(statement))
