"""The access engine following the SCIM directory, inside each request's transaction.

:class:`AccessListener` is the :class:`connector.directory.listener.DirectoryListener`
the application installs: every directory change is audited, and derived
access is recomputed for exactly the users it can affect (DESIGN.md rules 1-12):

- a membership delta of k users recomputes those k users, and only when a
  mapping rule is bound to the group;
- a user write recomputes that user when ``active`` changed (a leaver or a
  rejoiner, rule 8) or, if the org maps Entra app roles, its ``roles``;
- a group write binds the unbound rules that name the group by its new
  displayName or externalId, then recomputes its members if a binding was added;
- deleting a group recomputes its former members; deleting a user frees its
  seat or queue place and drops its snapshot, while its audit trail stays.

The application takes the organization's write lock before the directory
write (:func:`connector.derived.locks.lock_org_for_write`), so the
Owner seating here never races another writer.
"""

from __future__ import annotations

from typing import Any, cast

from scim2_models import InvalidValueException
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from connector.access.mapping import GroupRef, bind_rules, client_addresses
from connector.derived.facts import (
    attribute,
    created_user,
    email_addresses,
    forget_rules,
    is_active,
    load_rules,
    scim_role_values,
)
from connector.derived.recompute import recompute
from connector.derived.tables import GroupBinding
from connector.directory.tables import GROUP_MEMBERS
from connector.provisioning.cause import Cause, current_cause
from connector.trail.journal import Journal

Document = dict[str, Any]

AUDITED_IDS = 1000
"""Member ids one membership audit entry lists; a larger delta is cut there, and counted."""

_INSERT_BINDINGS = insert(cast(Table, GroupBinding.__table__))
_GROUP_MEMBER_IDS = select(GROUP_MEMBERS.c.user_id).where(
    GROUP_MEMBERS.c.group_id == bindparam("group_id")
)


class AccessListener:
    """Recomputes Hub access, audits and announces every directory change (DESIGN.md rules 1-12).

    Each change's audit entries and events are collected in a
    :class:`~connector.trail.journal.Journal` and appended together.
    """

    def __init__(self) -> None:
        pass

    # -- users ---------------------------------------------------------------------------

    def check_user(self, session: Session, org_id: int, document: Document) -> None:
        """Refuse to provision a Portal client's address as staff (DESIGN.md rule 9).

        An address of one of the org's client domains in ``emails`` or in the
        userName is refused on create and update. A deactivation is never
        refused (rule 4: a leaver event always takes effect).
        """
        config = load_rules(session, org_id).config
        if not config.client_domains or not is_active(document):
            return
        found = client_addresses(config, email_addresses(document))
        if found:
            domain = found[0].rpartition("@")[2].lower()
            raise InvalidValueException(
                detail=f"{found[0]!r} is in {domain!r}, a client email domain of this "
                "organization: Portal client identities are managed by Portal, not "
                "provisioned as Hub staff (DESIGN.md rule 9)"
            )

    def user_written(
        self,
        session: Session,
        org_id: int,
        user_id: str,
        before: Document | None,
        after: Document,
    ) -> None:
        journal = Journal()
        _user_written(session, org_id, user_id, before, after, current_cause(org_id), journal)
        journal.write(session, org_id)

    def user_deleted(
        self, session: Session, org_id: int, user_id: str, before: Document, group_ids: set[str]
    ) -> None:
        cause = current_cause(org_id)
        journal = Journal()
        journal.audit(
            cause,
            "user.deleted",
            f"user:{user_id}",
            {**_plain(before), "groups": sorted(group_ids)},
            None,
        )
        user_name = attribute(before, "userName")
        deleted = {user_id: user_name if isinstance(user_name, str) else None}
        recompute(session, org_id, [], cause=cause, deleted=deleted, journal=journal)
        _user_event(journal, "user.deleted", user_id, before)
        journal.write(session, org_id)

    # -- groups --------------------------------------------------------------------------

    def group_written(
        self,
        session: Session,
        org_id: int,
        group_id: str,
        before: Document | None,
        after: Document,
    ) -> None:
        journal = Journal()
        _group_written(session, org_id, group_id, before, after, current_cause(org_id), journal)
        journal.write(session, org_id)

    def group_deleted(
        self, session: Session, org_id: int, group_id: str, before: Document, member_ids: set[str]
    ) -> None:
        cause = current_cause(org_id)
        journal = Journal()
        journal.audit(
            cause,
            "group.deleted",
            f"group:{group_id}",
            {**_plain(before), **_listed("members", member_ids)},
            None,
        )
        # The rule bindings went with the group (foreign key); its members
        # lose what the group gave them.
        forget_rules(session, org_id)
        if member_ids:
            recompute(session, org_id, sorted(member_ids), cause=cause, journal=journal)
        journal.write(session, org_id)

    def members_changed(
        self, session: Session, org_id: int, group_id: str, added: set[str], removed: set[str]
    ) -> None:
        cause = current_cause(org_id)
        journal = Journal()
        journal.audit(
            cause,
            "group.members_changed",
            f"group:{group_id}",
            None,
            {**_listed("added", added), **_listed("removed", removed)},
        )
        rules = load_rules(session, org_id)
        if group_id in rules.bound_group_ids:
            recompute(
                session,
                org_id,
                sorted(added | removed),
                cause=cause,
                rules=rules,
                journal=journal,
            )
        journal.write(session, org_id)


def _user_written(
    session: Session,
    org_id: int,
    user_id: str,
    before: Document | None,
    after: Document,
    cause: Cause,
    journal: Journal,
) -> None:
    if before is None:
        journal.audit(cause, "user.created", f"user:{user_id}", None, _plain(after))
        rules = load_rules(session, org_id)
        created = created_user(user_id, after, rules)
        recompute(session, org_id, [], cause=cause, rules=rules, created=[created], journal=journal)
        return
    old, new = _changed_attributes(before, after)
    if not old and not new:
        return
    journal.audit(cause, "user.replaced", f"user:{user_id}", old, new)
    was_active, now_active = is_active(before), is_active(after)
    relevant = was_active != now_active
    if not relevant and scim_role_values(before) != scim_role_values(after):
        relevant = load_rules(session, org_id).config.map_scim_roles
    if relevant:
        recompute(session, org_id, [user_id], cause=cause, journal=journal)
    if was_active and not now_active:
        _user_event(journal, "user.deactivated", user_id, after)
    elif now_active and not was_active:
        _user_event(journal, "user.reactivated", user_id, after)


def _group_written(
    session: Session,
    org_id: int,
    group_id: str,
    before: Document | None,
    after: Document,
    cause: Cause,
    journal: Journal,
) -> None:
    if before is None:
        journal.audit(cause, "group.created", f"group:{group_id}", None, _plain(after))
    else:
        old, new = _changed_attributes(before, after)
        if not old and not new:
            return
        journal.audit(cause, "group.replaced", f"group:{group_id}", old, new)
    rules = load_rules(session, org_id)
    if not rules.config.group_keys:
        return
    name = attribute(after, "displayName")
    external_id = attribute(after, "externalId")
    ref = GroupRef(
        group_id,
        external_id if isinstance(external_id, str) else None,
        name if isinstance(name, str) else "",
    )
    bindings = bind_rules(rules.config, [ref], rules.context.bindings)
    if not bindings.newly_bound:
        return
    session.execute(
        _INSERT_BINDINGS,
        [
            {"org_id": org_id, "ref_key": key, "group_id": bound}
            for key, bound in sorted(bindings.newly_bound.items())
        ],
    )
    forget_rules(session, org_id)
    for key in sorted(bindings.newly_bound):
        journal.audit(
            cause,
            "mapping.rule_bound",
            f"group:{group_id}",
            None,
            {"group_ref": key, "group_id": group_id, "displayName": ref.display_name},
        )
    members = session.scalars(_GROUP_MEMBER_IDS, {"group_id": group_id})
    recompute(session, org_id, list(members), cause=cause, journal=journal)


def _plain(document: Document) -> Document:
    """A document as the audit trail keeps it: without ``meta``, which the store computes."""
    return {key: value for key, value in document.items() if key != "meta"}


def _changed_attributes(before: Document, after: Document) -> tuple[Document, Document]:
    """The top-level attributes a write changed, before and after (``meta`` aside)."""
    old, new = _plain(before), _plain(after)
    keys = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    return (
        {key: old[key] for key in keys if key in old},
        {key: new[key] for key in keys if key in new},
    )


def _listed(name: str, ids: set[str]) -> dict[str, Any]:
    listed = sorted(ids)
    data: dict[str, Any] = {name: listed[:AUDITED_IDS]}
    if len(listed) > AUDITED_IDS:
        data[f"{name}_count"] = len(listed)
    return data


def _user_event(journal: Journal, kind: str, user_id: str, document: Document) -> None:
    """``user.deactivated`` and ``user.deleted`` end the user's sessions (DESIGN.md rule 8)."""
    user_name = attribute(document, "userName")
    payload = {
        "user_id": user_id,
        "userName": user_name if isinstance(user_name, str) else None,
        "end_sessions": kind != "user.reactivated",
    }
    journal.announce(kind, user_id, payload)
