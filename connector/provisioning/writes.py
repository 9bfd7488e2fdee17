"""Hub's SCIM writes, each one explicit path: lock, store, recompute, journal.

:class:`ScimWrites` is the :class:`scim.backend.Backend` of one organization
for one request. The protocol layer has already parsed and validated the
request (``prepare_*`` in :mod:`scim.operations`) before it asks for it, so
every method here runs inside the request's one transaction and reads, top
to bottom, as the whole write:

1. take the organization's rules shared (exclusive when the write binds a
   mapping rule to a group), and read them once;
2. refuse what Hub must not store (a client address as staff:
   docs/rules.md#client-identities);
3. lock what the change touches: the group, then the users whose access is
   recomputed, in id order (:mod:`connector.derived.locks`);
4. apply the change through the directory store, which reports exactly what
   changed;
5. recompute the access of exactly the users the change can affect
   (:func:`connector.derived.recompute.recompute`, which takes the Owner
   seats only when they can move);
6. journal it: audit entries, snapshots and product events in one write.

The organization's event counter is the last lock of every write: a single
write numbers its events in its journal write, its last statement. A Bulk
request's operations each journal their audit entries and snapshots, but
their events wait: :meth:`ScimWrites.commit` numbers all of them in one
step just before the commit. Numbering them as each operation ended would
hold the counter while later operations lock rules, groups, users and seats,
the reverse of a concurrent single write's order: a deadlock.

The caller commits once. The cause (credential and request line) is an
argument, never ambient state, and the store never calls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from scim2_models import Error, InvalidValueException, SCIMException
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from connector.access.assignable import known_values, unknown_values
from connector.access.mapping import GroupRef, bind_rules, client_addresses, group_ref_key
from connector.db.engine import begin_writing
from connector.derived.facts import (
    OrgRules,
    attribute,
    email_addresses,
    forget_rules,
    is_active,
    load_rules,
    satisfied_conditions,
    scim_role_values,
    user_from_document,
)
from connector.derived.locks import lock_rules_exclusive, lock_rules_shared, lock_users
from connector.derived.recompute import recompute
from connector.derived.tables import GROUP_BINDINGS
from connector.directory.members import check_member_ids, check_member_values, unknown_members
from connector.directory.store import DirectoryStore
from connector.trail.cause import Cause
from connector.trail.journal import Announcement, Journal
from connector.trail.role_changes import note_role_change
from scim.backend import Document, ListQuery, MemberChanges, Page, ResourceKind, Stored
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas
from scim.limits import Deadline, DeadlineExceededException

logger = logging.getLogger(__name__)

AUDITED_IDS = 1000
"""Member ids one membership audit entry lists; a larger delta is cut there, and counted."""

USER = ResourceKind.USER
GROUP = ResourceKind.GROUP


class ScimWrites:
    """The SCIM directory of organization ``org_id`` with Hub access kept beside it."""

    def __init__(
        self,
        session: Session,
        org_id: int,
        cause: Cause,
        served: ServedSchemas = DEFAULT_SCHEMAS,
    ) -> None:
        self.session = session
        self.org_id = org_id
        self.cause = cause
        self.store = DirectoryStore(session, org_id, models=dict(served.models))
        self._held_events: list[Announcement] | None = None
        """The events of a Bulk request's operations so far, numbered at commit."""

    # -- reads: no lock ------------------------------------------------------------------

    def get(self, kind: ResourceKind, resource_id: str, *, include_members: bool = True) -> Stored:
        return self.store.get(kind, resource_id, include_members=include_members)

    def list(self, kind: ResourceKind, query: ListQuery) -> Page:
        return self.store.list(kind, query)

    # -- users ---------------------------------------------------------------------------

    def create(
        self, kind: ResourceKind, document: Document, members: MemberChanges | None = None
    ) -> Stored:
        """POST /Users or /Groups (RFC 7644 section 3.3)."""
        if kind is GROUP:
            return self._create_group(document, members)
        rules = self._rules()
        refuse_client_address(rules, document)
        refuse_unknown_roles(rules, document)
        written = self.store.create(USER, document)
        journal = Journal()
        journal.audit(
            self.cause, "user.created", f"user:{written.stored.id}", None, _plain(written.after)
        )
        created = user_from_document(written.stored.id, written.after, rules)
        recompute(
            self.session,
            self.org_id,
            [],
            cause=self.cause,
            rules=rules,
            created=[created],
            journal=journal,
        )
        self._write(journal)
        return written.stored

    def replace(
        self,
        kind: ResourceKind,
        resource_id: str,
        document: Document,
        members: MemberChanges | None = None,
        *,
        expected_version: str | None = None,
    ) -> Stored:
        """PUT, or the write-back of a PATCH (RFC 7644 sections 3.5.1 and 3.5.2)."""
        if kind is GROUP:
            return self._replace_group(resource_id, document, members, expected_version)
        rules = self._rules()
        refuse_client_address(rules, document)
        # The store locks the user's row: the user's own lock for the recompute.
        written = self.store.replace(USER, resource_id, document, expected_version=expected_version)
        if not written.attributes_changed:
            return written.stored
        assert written.before is not None
        before, after = written.before, written.after
        # Checked against what was stored: a value kept from before is never refused.
        refuse_unknown_roles(rules, after, before)
        journal = Journal()
        old, new = _changed_attributes(before, after)
        journal.audit(self.cause, "user.replaced", f"user:{resource_id}", old, new)
        was_active, now_active = is_active(before), is_active(after)
        old_roles, new_roles = scim_role_values(before), scim_role_values(after)
        if old_roles != new_roles:
            # Whether the IdP ever takes a role away, for the health report.
            note_role_change(self.session, self.org_id, resource_id, old_roles, new_roles)
        roles_count = rules.config.map_scim_roles and old_roles != new_roles
        # A mover: a profile change that makes a rule's condition true or false.
        moved = bool(rules.config.conditions) and satisfied_conditions(
            rules.config, before
        ) != satisfied_conditions(rules.config, after)
        if was_active and not now_active:
            # A leaver's access is none whatever their groups and grants: the
            # document says all derivation needs (docs/rules.md#leavers).
            leaver = user_from_document(resource_id, after, rules)
            recompute(
                self.session,
                self.org_id,
                [],
                cause=self.cause,
                rules=rules,
                known=[leaver],
                journal=journal,
            )
        elif was_active != now_active or roles_count or moved:
            recompute(
                self.session,
                self.org_id,
                [resource_id],
                cause=self.cause,
                rules=rules,
                journal=journal,
            )
        if was_active and not now_active:
            _user_event(journal, "user.deactivated", resource_id, after)
        elif now_active and not was_active:
            _user_event(journal, "user.reactivated", resource_id, after)
        self._write(journal)
        return written.stored

    def delete(
        self, kind: ResourceKind, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        """DELETE a user or a group (RFC 7644 section 3.6; docs/rules.md#leavers)."""
        if kind is GROUP:
            self._delete_group(resource_id, expected_version)
            return
        rules = self._rules()
        deleted = self.store.delete(USER, resource_id, expected_version=expected_version)
        journal = Journal()
        journal.audit(
            self.cause,
            "user.deleted",
            f"user:{resource_id}",
            {**_plain(deleted.before), "groups": sorted(deleted.related)},
            None,
        )
        user_name = attribute(deleted.before, "userName")
        recompute(
            self.session,
            self.org_id,
            [],
            cause=self.cause,
            rules=rules,
            deleted={resource_id: user_name if isinstance(user_name, str) else None},
            journal=journal,
        )
        _user_event(journal, "user.deleted", resource_id, deleted.before)
        self._write(journal)

    # -- groups --------------------------------------------------------------------------

    def update_members(
        self, group_id: str, members: MemberChanges, *, expected_version: str | None = None
    ) -> Stored:
        """A PATCH of a group's members alone: O(k) in the members it names."""
        rules = self._rules()
        stored = self.store.bump_group(group_id, expected_version=expected_version)
        if group_id in rules.bound_group_ids:
            self._lock_members(group_id, members)
        else:
            check_member_ids(self.session, self.org_id, members)
        added, removed = self.store.apply_members(group_id, members)
        journal = Journal()
        self._members_changed(journal, rules, group_id, added, removed)
        self._write(journal)
        return stored

    def _create_group(self, document: Document, members: MemberChanges | None) -> Stored:
        rules = self._rules_for_group(lambda found: _binds_rule(found, _group_ref("", document)))
        bound = _binds_rule(rules, _group_ref("", document))
        if bound and members is not None:
            self._lock_members(None, members)
        written = self.store.create(GROUP, document, members, members_checked=bound)
        group_id = written.stored.id
        journal = Journal()
        journal.audit(self.cause, "group.created", f"group:{group_id}", None, _plain(written.after))
        self._bind_rules(journal, rules, group_id, written.after)
        self._write(journal)
        return written.stored

    def _replace_group(
        self,
        group_id: str,
        document: Document,
        members: MemberChanges | None,
        expected_version: str | None,
    ) -> Stored:
        rules = self._rules_for_group(
            lambda found: _binds_rule(found, _group_ref(group_id, document))
        )
        binds = _binds_rule(rules, _group_ref(group_id, document))
        bound = binds or group_id in rules.bound_group_ids
        if bound:
            # The group first, then its users, as every membership write.
            self.store.lock(GROUP, group_id, expected_version=expected_version)
            if members is not None:
                self._lock_members(group_id, members)
        written = self.store.replace(
            GROUP,
            group_id,
            document,
            members,
            expected_version=expected_version,
            members_checked=bound,
        )
        journal = Journal()
        if written.attributes_changed:
            assert written.before is not None
            old, new = _changed_attributes(written.before, written.after)
            journal.audit(self.cause, "group.replaced", f"group:{group_id}", old, new)
        rebound = self._bind_rules(journal, rules, group_id, written.after)
        if not rebound:
            self._members_changed(journal, rules, group_id, written.added, written.removed)
        elif written.added or written.removed:
            # The binding recomputed every member, these included; the audit
            # trail still records who joined and left.
            _audit_members(journal, self.cause, group_id, written.added, written.removed)
        self._write(journal)
        return written.stored

    def _delete_group(self, group_id: str, expected_version: str | None) -> None:
        # A bound group's rule bindings go with it (foreign key): a change of
        # the rules, under their exclusive lock.
        rules = self._rules_for_group(lambda found: group_id in found.bound_group_ids)
        if group_id in rules.bound_group_ids:
            self.store.lock(GROUP, group_id, expected_version=expected_version)
            lock_users(self.session, self.org_id, self.store.member_ids(group_id))
        deleted = self.store.delete(GROUP, group_id, expected_version=expected_version)
        journal = Journal()
        journal.audit(
            self.cause,
            "group.deleted",
            f"group:{group_id}",
            {**_plain(deleted.before), **_listed("members", deleted.related)},
            None,
        )
        if group_id in rules.bound_group_ids:
            # The rule bindings went with the group (foreign key); its members
            # lose what the group gave them.
            forget_rules(self.session, self.org_id)
            recompute(
                self.session,
                self.org_id,
                sorted(deleted.related),
                cause=self.cause,
                journal=journal,
            )
        self._write(journal)

    # -- transactions --------------------------------------------------------------------

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """One Bulk operation; the writing transaction begins before the first one.

        The operation's events are held until :meth:`commit`, and forgotten
        with the operation if it fails. A database that failed the operation
        (a deadlock broken) answers it 503, which the IdP retries, not 500;
        the others carry on. Past the request's deadline the whole Bulk answers
        503 and keeps nothing (SQLite, interrupting a write, rolls back all of it).
        """
        begin_writing(self.session)
        if self._held_events is None:
            self._held_events = []
        held = len(self._held_events)
        try:
            with self.store.savepoint():
                yield
        except BaseException as error:
            del self._held_events[held:]
            if isinstance(error, OperationalError):
                logger.warning("Bulk operation failed by the database: %s", error.orig)
                if Deadline.passed():
                    raise DeadlineExceededException() from error
                raise SCIMException.from_error(
                    Error(status=503, detail="The directory was busy; retry this operation.")
                ) from error
            raise

    def commit(self) -> None:
        """Number and write the held events (the counter's lock, taken last), then commit."""
        held, self._held_events = self._held_events, None
        if held:
            try:
                Journal(announcements=held).write(self.session, self.org_id)
            except BaseException:
                self.session.rollback()
                raise
        self.session.commit()

    def rollback(self) -> None:
        self._held_events = None
        self.session.rollback()

    # -- the steps -----------------------------------------------------------------------

    def _write(self, journal: Journal) -> None:
        """Step 6; inside a Bulk operation its events wait for :meth:`commit`."""
        if self._held_events is not None:
            self._held_events.extend(journal.announcements)
            journal.announcements = []
        journal.write(self.session, self.org_id)

    def _rules(self, *, exclusive: bool = False) -> OrgRules:
        """Step 1: the organization's rules, held until commit, read once under the lock.

        Shared by every write; exclusive for one that changes a binding (a
        group write that binds a rule, a bound group's delete). Bindings and
        the mapping change only under the exclusive lock, so what a shared
        holder read stays true until it commits.
        """
        begin_writing(self.session)
        if exclusive:
            lock_rules_exclusive(self.session, self.org_id)
        else:
            lock_rules_shared(self.session, self.org_id)
        # Whatever was read before the lock was granted may be stale now.
        forget_rules(self.session, self.org_id)
        return load_rules(self.session, self.org_id)

    def _rules_for_group(self, changes_bindings: Callable[[OrgRules], bool]) -> OrgRules:
        """Step 1 for a group write: exclusive when it changes a binding, decided beforehand.

        A look at the rules without a lock decides which lock to take, so a
        shared lock is never upgraded (two upgraders would deadlock). Should
        the rules have changed in between so that the write now binds, the
        upgrade is taken as a last resort: the database breaks a deadlock,
        if any, with a retryable 503.
        """
        begin_writing(self.session)
        exclusive = changes_bindings(load_rules(self.session, self.org_id))
        rules = self._rules(exclusive=exclusive)
        if not exclusive and changes_bindings(rules):
            rules = self._rules(exclusive=True)
        return rules

    def _lock_members(self, group_id: str | None, members: MemberChanges) -> None:
        """Step 3: lock every user the delta can touch, in id order; refuse unknown ones.

        A replacement or a removal of every member also touches the members
        stored now, read under the group's lock.
        """
        to_add = check_member_values(members)
        touched: set[str] = to_add | set(members.remove)
        if group_id is not None and (members.remove_all or members.replace is not None):
            touched |= set(self.store.member_ids(group_id))
        locked = lock_users(self.session, self.org_id, touched)
        if to_add - locked:
            raise unknown_members(to_add - locked)

    def _members_changed(
        self,
        journal: Journal,
        rules: OrgRules,
        group_id: str,
        added: Collection[str],
        removed: Collection[str],
    ) -> None:
        """Steps 5 and 6 of a membership change: audit it, recompute its users if mapped."""
        if not added and not removed:
            return
        _audit_members(journal, self.cause, group_id, added, removed)
        if group_id in rules.bound_group_ids:
            recompute(
                self.session,
                self.org_id,
                sorted({*added, *removed}),
                cause=self.cause,
                rules=rules,
                journal=journal,
            )

    def _bind_rules(
        self, journal: Journal, rules: OrgRules, group_id: str, document: Document
    ) -> bool:
        """Bind the unbound rules that name this group; recompute its members if any bound.

        A rule names a group by displayName or externalId
        (docs/rules.md#platform-role); the binding survives later renames.
        """
        if not rules.config.group_keys:
            return False
        ref = _group_ref(group_id, document)
        bindings = bind_rules(rules.config, [ref], rules.context.bindings)
        if not bindings.newly_bound:
            return False
        self.session.execute(
            insert(GROUP_BINDINGS),
            [
                {"org_id": self.org_id, "ref_key": key, "group_id": bound}
                for key, bound in sorted(bindings.newly_bound.items())
            ],
        )
        forget_rules(self.session, self.org_id)
        for key in sorted(bindings.newly_bound):
            journal.audit(
                self.cause,
                "mapping.rule_bound",
                f"group:{group_id}",
                None,
                {"group_ref": key, "group_id": group_id, "displayName": ref.display_name},
            )
        recompute(
            self.session,
            self.org_id,
            self.store.member_ids(group_id),
            cause=self.cause,
            journal=journal,
        )
        return True


def refuse_client_address(rules: OrgRules, document: Document) -> None:
    """Refuse to provision a Portal client's address as staff (docs/rules.md#client-identities).

    An address of one of the organization's client domains in ``emails`` or
    in the userName is refused on create and update. A deactivation is never
    refused: a leaver event always takes effect (docs/rules.md#leavers).
    """
    config = rules.config
    if not config.client_domains or not is_active(document):
        return
    found = client_addresses(config, email_addresses(document))
    if found:
        domain = found[0].rpartition("@")[2].lower()
        raise InvalidValueException(
            detail=f"{found[0]!r} is in {domain!r}, a client email domain of this "
            "organization: Portal client identities are managed by Portal, not "
            "provisioned as Hub staff (docs/rules.md#client-identities)"
        )


def refuse_unknown_roles(
    rules: OrgRules, document: Document, before: Document | None = None
) -> None:
    """Refuse a role value Hub does not know (docs/rules.md#assignable-values).

    Only while the mapping reads SCIM roles (``map_scim_roles``), only values
    this write adds (a value stored before stays, even if the mapping no
    longer names it), and never on a deactivation (docs/rules.md#leavers).
    The error lists every value Hub accepts, as ``/Roles`` publishes them.
    """
    config = rules.config
    if not config.map_scim_roles or not is_active(document):
        return
    stored = {group_ref_key(value) for value in scim_role_values(before)}
    added = sorted(
        value for value in scim_role_values(document) if group_ref_key(value) not in stored
    )
    unknown = unknown_values(config, added)
    if unknown:
        named = ", ".join(repr(value) for value in unknown)
        valid = ", ".join(repr(value) for value in known_values(config).values())
        raise InvalidValueException(
            detail=f"roles: {named} {'is' if len(unknown) == 1 else 'are'} not a role or "
            f"entitlement of this organization; the valid values are {valid} "
            "(listed at /Roles and /Entitlements; see docs/rules.md#assignable-values)"
        )


def _group_ref(group_id: str, document: Document) -> GroupRef:
    name = attribute(document, "displayName")
    external_id = attribute(document, "externalId")
    return GroupRef(
        group_id,
        external_id if isinstance(external_id, str) else None,
        name if isinstance(name, str) else "",
    )


def _binds_rule(rules: OrgRules, ref: GroupRef) -> bool:
    """Whether writing a group so named binds a rule not bound yet."""
    if not rules.config.group_keys:
        return False
    return bool(bind_rules(rules.config, [ref], rules.context.bindings).newly_bound)


def _audit_members(
    journal: Journal, cause: Cause, group_id: str, added: Collection[str], removed: Collection[str]
) -> None:
    journal.audit(
        cause,
        "group.members_changed",
        f"group:{group_id}",
        None,
        {**_listed("added", added), **_listed("removed", removed)},
    )


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


def _listed(name: str, ids: Iterable[str]) -> dict[str, Any]:
    listed = sorted(ids)
    data: dict[str, Any] = {name: listed[:AUDITED_IDS]}
    if len(listed) > AUDITED_IDS:
        data[f"{name}_count"] = len(listed)
    return data


def _user_event(journal: Journal, kind: str, user_id: str, document: Document) -> None:
    """``user.deactivated`` and ``user.deleted`` end the user's sessions (docs/rules.md#leavers)."""
    user_name = attribute(document, "userName")
    payload = {
        "user_id": user_id,
        "userName": user_name if isinstance(user_name, str) else None,
        "end_sessions": kind != "user.reactivated",
    }
    journal.announce(kind, user_id, payload)
