"""The access engine following the SCIM directory, inside each request's transaction.

:class:`AccessListener` is the :class:`connector.store.listener.DirectoryListener`
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
write (:func:`connector.provisioning.locking.lock_org_for_write`), so the
Owner seating here never races another writer.
"""

from __future__ import annotations

from typing import Any

from scim2_models import InvalidValueException
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from connector import audit
from connector.access.mapping import GroupRef, bind_rules, client_addresses
from connector.provisioning.announce import Announcement, announce
from connector.provisioning.context import Cause, current_cause
from connector.provisioning.directory import (
    attribute,
    email_addresses,
    is_active,
    load_config,
    load_rules,
    scim_role_values,
)
from connector.provisioning.engine import recompute
from connector.provisioning.tables import GroupBinding
from connector.store.tables import GroupMember

Document = dict[str, Any]

AUDITED_IDS = 1000
"""Member ids one membership audit entry lists; a larger delta is cut there, and counted."""


class AccessListener:
    """Recomputes Hub access, audits and announces every directory change (DESIGN.md rules 1-12)."""

    def __init__(self) -> None:
        pass

    # -- users ---------------------------------------------------------------------------

    def check_user(self, session: Session, org_id: int, document: Document) -> None:
        """Refuse to provision a Portal client's address as staff (DESIGN.md rule 9).

        An address of one of the org's client domains in ``emails`` or in the
        userName is refused on create and update. A deactivation is never
        refused (rule 4: a leaver event always takes effect).
        """
        config = load_config(session, org_id)[0]
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
        cause = current_cause(org_id)
        if before is None:
            _audit(session, org_id, cause, "user.created", f"user:{user_id}", None, _plain(after))
            recompute(session, org_id, [user_id], cause=cause)
            return
        old, new = _changed_attributes(before, after)
        if not old and not new:
            return
        _audit(session, org_id, cause, "user.replaced", f"user:{user_id}", old, new)
        was_active, now_active = is_active(before), is_active(after)
        relevant = was_active != now_active
        if not relevant and scim_role_values(before) != scim_role_values(after):
            relevant = load_config(session, org_id)[0].map_scim_roles
        if relevant:
            recompute(session, org_id, [user_id], cause=cause)
        if was_active and not now_active:
            _user_event(session, org_id, "user.deactivated", user_id, after)
        elif now_active and not was_active:
            _user_event(session, org_id, "user.reactivated", user_id, after)

    def user_deleted(
        self, session: Session, org_id: int, user_id: str, before: Document, group_ids: set[str]
    ) -> None:
        cause = current_cause(org_id)
        _audit(
            session,
            org_id,
            cause,
            "user.deleted",
            f"user:{user_id}",
            {**_plain(before), "groups": sorted(group_ids)},
            None,
        )
        user_name = attribute(before, "userName")
        deleted = {user_id: user_name if isinstance(user_name, str) else None}
        recompute(session, org_id, [], cause=cause, deleted=deleted)
        _user_event(session, org_id, "user.deleted", user_id, before)

    # -- groups --------------------------------------------------------------------------

    def group_written(
        self,
        session: Session,
        org_id: int,
        group_id: str,
        before: Document | None,
        after: Document,
    ) -> None:
        cause = current_cause(org_id)
        if before is None:
            _audit(
                session, org_id, cause, "group.created", f"group:{group_id}", None, _plain(after)
            )
        else:
            old, new = _changed_attributes(before, after)
            if not old and not new:
                return
            _audit(session, org_id, cause, "group.replaced", f"group:{group_id}", old, new)
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
            insert(GroupBinding),
            [
                {"org_id": org_id, "ref_key": key, "group_id": bound}
                for key, bound in sorted(bindings.newly_bound.items())
            ],
        )
        for key in sorted(bindings.newly_bound):
            _audit(
                session,
                org_id,
                cause,
                "mapping.rule_bound",
                f"group:{group_id}",
                None,
                {"group_ref": key, "group_id": group_id, "displayName": ref.display_name},
            )
        members = session.scalars(
            select(GroupMember.user_id).where(GroupMember.group_id == group_id)
        )
        recompute(session, org_id, list(members), cause=cause)

    def group_deleted(
        self, session: Session, org_id: int, group_id: str, before: Document, member_ids: set[str]
    ) -> None:
        cause = current_cause(org_id)
        _audit(
            session,
            org_id,
            cause,
            "group.deleted",
            f"group:{group_id}",
            {**_plain(before), **_listed("members", member_ids)},
            None,
        )
        # The rule bindings went with the group (foreign key); its members
        # lose what the group gave them.
        if member_ids:
            recompute(session, org_id, sorted(member_ids), cause=cause)

    def members_changed(
        self, session: Session, org_id: int, group_id: str, added: set[str], removed: set[str]
    ) -> None:
        cause = current_cause(org_id)
        _audit(
            session,
            org_id,
            cause,
            "group.members_changed",
            f"group:{group_id}",
            None,
            {**_listed("added", added), **_listed("removed", removed)},
        )
        rules = load_rules(session, org_id)
        if group_id in rules.bound_group_ids:
            recompute(session, org_id, sorted(added | removed), cause=cause, rules=rules)


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


def _audit(
    session: Session,
    org_id: int,
    cause: Cause,
    action: str,
    target: str,
    before: Any,
    after: Any,
) -> None:
    audit.record(
        session,
        org_id,
        actor=cause.actor,
        action=action,
        target=target,
        before=before,
        after=after,
        reason=cause.reason,
    )


def _user_event(session: Session, org_id: int, kind: str, user_id: str, document: Document) -> None:
    """``user.deactivated`` and ``user.deleted`` end the user's sessions (DESIGN.md rule 8)."""
    user_name = attribute(document, "userName")
    payload = {
        "user_id": user_id,
        "userName": user_name if isinstance(user_name, str) else None,
        "end_sessions": kind != "user.reactivated",
    }
    announce(session, org_id, [Announcement(kind, user_id, payload)])
