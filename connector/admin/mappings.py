"""Applying IT's mapping file to an organization, with a preview of what it does.

:func:`apply_mapping` parses the file (refused whole, naming lines), binds its
rules to the groups the IdP pushed, derives every user's access under it and
seats Owners; it returns a :class:`MappingPreview`: every user whose access
changes (before and after), would-be third Owners held, rules matching no
group. With ``dry_run`` nothing is written; otherwise the mapping, bindings,
snapshots, seats, audit entries and events are written in the caller's
transaction. Users are read in batches, so a change of the default role,
which touches everyone, stays bounded in memory per batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from connector.access.derive import AccessContext, Source, derive_access, qualifies_as_owner
from connector.access.mapping import (
    GroupRef,
    MappingConfig,
    MappingRule,
    RuleBindings,
    bind_rules,
    parse_mapping,
)
from connector.access.owners import OwnerEventKind, OwnerOutcome, seat_owners
from connector.db import dialect as sql
from connector.db.base import utcnow
from connector.derived.facts import (
    OrgRules,
    forget_rules,
    iter_user_batches,
    load_rules,
    load_seats,
    load_snapshots,
    load_user_names,
    load_users,
)
from connector.derived.locks import lock_rules_exclusive
from connector.derived.recompute import (
    UserChange,
    diff_access,
    drop_snapshots,
    owner_event_json,
    record_access_changes,
    record_owner_events,
    save_seats,
    save_snapshots,
)
from connector.derived.tables import GroupBinding, MappingDocument
from connector.directory.extensions import org_schemas
from connector.directory.tables import ScimAttributeValue, ScimResource
from connector.trail.cause import Cause
from connector.trail.journal import Journal
from scim.backend import ResourceKind

LISTED_CLIENT_USERS = 50


@dataclass(frozen=True)
class MappingPreview:
    """What applying a mapping does (or did): the ``--dry-run`` preview."""

    org_id: int
    dry_run: bool
    config: MappingConfig
    changes: tuple[UserChange, ...]
    owners: OwnerOutcome
    users_examined: int
    unmatched_rules: tuple[MappingRule, ...] = ()
    ambiguous_rules: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    client_domain_users: tuple[str, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def applied(self) -> bool:
        return not self.dry_run

    @property
    def held(self) -> tuple[dict[str, Any], ...]:
        """Users this mapping newly holds as would-be third Owners, with their queue places."""
        return tuple(
            owner_event_json(event, self.owners, self.names)
            for event in self.owners.events
            if event.kind is OwnerEventKind.HELD
        )

    @property
    def condition_movers(self) -> tuple[UserChange, ...]:
        """Users whose access moves because a rule's ``when`` now holds or no longer does."""
        return tuple(item for item in self.changes if condition_causes(item))

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "dry_run": self.dry_run,
            "users_examined": self.users_examined,
            "changed_users": len(self.changes),
            "changes": [change.to_json() for change in self.changes],
            "condition_movers": [
                {
                    "userName": item.user_name,
                    "user_id": item.user_id,
                    "rules": [source.describe() for source in condition_causes(item)],
                }
                for item in self.condition_movers
            ],
            "held": list(self.held),
            "owners": self.owners.after.to_json(),
            "owner_events": [
                owner_event_json(event, self.owners, self.names) for event in self.owners.events
            ],
            "unmatched_rules": [rule.to_json() for rule in self.unmatched_rules],
            "ambiguous_rules": [
                {"rule": number, "groups": list(groups)}
                for number, groups in sorted(self.ambiguous_rules.items())
            ],
            "client_domain_users": list(self.client_domain_users),
            "mapping": self.config.to_json(),
        }

    def to_text(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        head = "Dry run: nothing was changed." if self.dry_run else "Mapping applied."
        lines = [head, f"{len(self.changes)} of {self.users_examined} users {verb}:"]
        for item in self.changes:
            who = item.user_name or item.user_id
            line = f"  {who}: {describe_change(item.change.before, item.change.after)}"
            because = condition_causes(item)
            if because:
                line += " (moved by " + ", ".join(source.describe() for source in because) + ")"
            lines.append(line)
        for held in self.held:
            lines.append(
                f"Held as a third Owner: {held.get('userName') or held['user_id']} "
                f"(queue position {held.get('queue_position')}); acts with the fallback role "
                f"{self.config.owner_fallback_role.value}"
            )
        for event in self.owners.events:
            if event.kind is not OwnerEventKind.HELD:
                who = self.names.get(event.user_id or "") or event.user_id or "org"
                lines.append(f"Owners: {event.kind.value} {who}: {event.reason}")
        for rule in self.unmatched_rules:
            lines.append(f"Rule matching no group (line {rule.line}): {rule.describe()}")
        for number, groups in sorted(self.ambiguous_rules.items()):
            lines.append(
                f"Rule {number} matches several groups and is bound to none: {', '.join(groups)}"
            )
        if self.client_domain_users:
            lines.append(
                "Active users with a client-domain address (their next update will be refused): "
                + ", ".join(self.client_domain_users)
            )
        return "\n".join(lines)


def condition_causes(item: UserChange) -> tuple[Source, ...]:
    """The rules with a ``when`` condition among the causes of a change (a mover's rules)."""
    return tuple(source for source in item.change.causes if source.when is not None)


def describe_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """``role member -> owner; products +psa -crm``: one line per user for the preview."""
    parts = []
    for key in after:
        old, new = before.get(key), after.get(key)
        if isinstance(new, dict) and isinstance(old, dict):
            gained = [f"+{name}" for name in sorted(new) if name not in old]
            lost = [f"-{name}" for name in sorted(old) if name not in new]
            changed = [f"~{name}" for name in sorted(new) if name in old and old[name] != new[name]]
            parts.append(f"{key} {' '.join(gained + lost + changed)}")
        else:
            parts.append(f"{key} {_word(old)} -> {_word(new)}")
    return "; ".join(parts)


def _word(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def current_mapping(session: Session, org_id: int) -> str | None:
    """The mapping file in force, verbatim, or None when IT never applied one."""
    return session.scalar(select(MappingDocument.source).where(MappingDocument.org_id == org_id))


def apply_mapping(
    session: Session,
    org_id: int,
    source: str,
    *,
    actor: str,
    dry_run: bool,
    source_name: str = "mapping",
) -> MappingPreview:
    """Parse, bind, derive and (unless ``dry_run``) apply a mapping file; see the module docstring.

    Raises :class:`connector.access.mapping.MappingError` naming every bad line.
    """
    served = org_schemas(session, org_id)
    config = parse_mapping(source, source=source_name, user_model=served.model(ResourceKind.USER))
    if not dry_run:
        lock_rules_exclusive(session, org_id)
    old = load_rules(session, org_id)
    bindings = bind_rules(config, _group_refs(session, org_id), old.context.bindings)
    rules = OrgRules(
        AccessContext(config, dict(bindings.by_key), old.context.product_states),
        source,
        served=old.served,
    )
    cause = Cause(actor, f"mapping applied ({source_name})")
    now = utcnow()

    # Pass 1: who qualifies as Owner under the new rules, oldest first.
    stored = load_seats(session, org_id)
    known = set(stored.known)
    holders: set[str] = set()
    newcomers: list[str] = []
    leavers = set(stored.vanished)
    examined = 0
    for batch in iter_user_batches(session, org_id):
        users = load_users(session, org_id, batch, rules)
        examined += len(batch)
        for user_id in batch:
            facts = users[user_id].facts
            if not facts.active:
                leavers.add(user_id)
            elif qualifies_as_owner(facts, rules.context):
                (holders.add(user_id) if user_id in known else newcomers.append(user_id))
    qualifying = [user for user in stored.known if user in holders] + newcomers
    outcome = seat_owners(stored.seats, qualifying, leavers, now=now)
    names = load_user_names(session, org_id, {e.user_id for e in outcome.events if e.user_id})

    journal = Journal()
    if not dry_run:
        _store_mapping(session, org_id, source, old, bindings, config, cause, journal)
        save_seats(session, org_id, outcome.before, outcome.after, now=now)
        drop_snapshots(session, org_id, stored.vanished)
        record_owner_events(session, org_id, outcome, cause, journal, names)

    # Pass 2: everyone's access under the new rules, against the snapshots.
    changes: list[UserChange] = []
    for batch in iter_user_batches(session, org_id):
        users = load_users(session, org_id, batch, rules)
        before = load_snapshots(session, org_id, batch)
        after = {
            user_id: derive_access(
                users[user_id].facts, rules.context, outcome.after.standing(user_id)
            )
            for user_id in batch
        }
        found = diff_access(before, after, {user_id: users[user_id].user_name for user_id in batch})
        changes.extend(found)
        if not dry_run:
            save_snapshots(journal, before, after)
            record_access_changes(found, after, cause, journal)
            journal.write(session, org_id)
    if not dry_run:
        journal.write(session, org_id)
        session.flush()
    return MappingPreview(
        org_id=org_id,
        dry_run=dry_run,
        config=config,
        changes=tuple(changes),
        owners=outcome,
        users_examined=examined,
        unmatched_rules=_rules_with(config, bindings.unmatched),
        ambiguous_rules={
            rule.number: bindings.ambiguous[rule.group_key]
            for rule in config.rules
            if rule.group_key is not None and rule.group_key in bindings.ambiguous
        },
        client_domain_users=client_domain_users(session, org_id, config),
        names=names,
    )


def _group_refs(session: Session, org_id: int) -> list[GroupRef]:
    rows = session.execute(
        select(ScimResource.id, ScimResource.external_id, ScimResource.name).where(
            ScimResource.org_id == org_id, ScimResource.kind == ResourceKind.GROUP.value
        )
    )
    return [GroupRef(group_id, external_id, name) for group_id, external_id, name in rows]


def _rules_with(config: MappingConfig, keys: tuple[str, ...]) -> tuple[MappingRule, ...]:
    wanted = set(keys)
    return tuple(rule for rule in config.rules if rule.group_key in wanted)


def _store_mapping(
    session: Session,
    org_id: int,
    source: str,
    old: OrgRules,
    bindings: RuleBindings,
    config: MappingConfig,
    cause: Cause,
    journal: Journal,
) -> None:
    actor = cause.actor
    forget_rules(session, org_id)
    document = session.get(MappingDocument, org_id)
    if document is None:
        session.add(
            MappingDocument(org_id=org_id, source=source, applied_by=actor, applied_at=utcnow())
        )
    else:
        document.source = source
        document.applied_by = actor
        document.applied_at = utcnow()
    before = old.context.bindings
    after = bindings.by_key
    stale = sorted(key for key in before if after.get(key) != before[key])
    if stale:
        session.execute(
            delete(GroupBinding).where(
                GroupBinding.org_id == org_id, GroupBinding.ref_key.in_(stale)
            )
        )
    fresh = sorted(key for key in after if before.get(key) != after[key])
    if fresh:
        session.execute(
            insert(GroupBinding),
            [{"org_id": org_id, "ref_key": key, "group_id": after[key]} for key in fresh],
        )
    session.flush()
    journal.audit(
        cause,
        "mapping.applied",
        "mapping",
        None if old.source is None else old.config.to_json(),
        {**config.to_json(), "bindings": dict(sorted(after.items()))},
    )


def client_domain_users(session: Session, org_id: int, config: MappingConfig) -> tuple[str, ...]:
    """Active users already holding an address of a client domain.

    The mapping cannot remove them; the preview names them so IT can
    (docs/rules.md#client-identities).
    """
    if not config.client_domains:
        return ()
    dialect = session.get_bind().dialect.name
    suffixes = [f"@{domain}" for domain in sorted(config.client_domains)]
    by_email = select(ScimAttributeValue.resource_id).where(
        ScimAttributeValue.org_id == org_id,
        ScimAttributeValue.path == "emails.value",
        or_(*(sql.ends_with(dialect, ScimAttributeValue.value_key, suffix) for suffix in suffixes)),
    )
    rows = session.scalars(
        select(ScimResource.name)
        .where(
            ScimResource.org_id == org_id,
            ScimResource.kind == ResourceKind.USER.value,
            ScimResource.active.is_not(False),
            or_(
                ScimResource.id.in_(by_email),
                *(sql.ends_with(dialect, ScimResource.name_key, suffix) for suffix in suffixes),
            ),
        )
        .order_by(ScimResource.name_key)
        .limit(LISTED_CLIENT_USERS)
    )
    return tuple(rows)


class PreviewOutdated(Exception):
    """The directory or the rules changed since the preview: applying now would do otherwise."""

    def __init__(self, preview: MappingPreview) -> None:
        super().__init__("the directory changed since the preview; review the new preview")
        self.preview = preview


def preview_fingerprint(preview: MappingPreview, source: str) -> str:
    """A digest of what a preview shows: the same file doing the same changes to the same users.

    Times are left out, so a preview and the apply of the same state agree.
    """
    shown = {
        "source": source,
        "users_examined": preview.users_examined,
        "changes": [change.to_json() for change in preview.changes],
        "owner_events": [[event.kind.value, event.user_id] for event in preview.owners.events],
        "unmatched": [rule.number for rule in preview.unmatched_rules],
        "ambiguous": sorted(preview.ambiguous_rules.items()),
        "client_domain_users": list(preview.client_domain_users),
    }
    encoded = json.dumps(shown, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def apply_previewed_mapping(
    session: Session,
    org_id: int,
    source: str,
    fingerprint: str,
    *,
    actor: str,
    source_name: str = "console",
) -> MappingPreview:
    """Apply ``source`` only if it does exactly what the preview ``fingerprint`` showed.

    Applies under the organization's write lock, in the caller's transaction;
    when the outcome differs from the preview (a user joined a group, another
    mapping was applied meanwhile), raises :class:`PreviewOutdated` carrying
    the new preview, and the caller rolls back: nothing changes.
    """
    applied = apply_mapping(
        session, org_id, source, actor=actor, dry_run=False, source_name=source_name
    )
    if preview_fingerprint(applied, source) != fingerprint:
        raise PreviewOutdated(dataclasses.replace(applied, dry_run=True))
    return applied
