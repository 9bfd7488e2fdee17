"""What one change writes beside the directory, written together.

docs/rules.md#audit and #immediacy-and-events.

A SCIM write stores the access it derived (snapshots), appends an audit entry
for itself and one per access change and Owner seating step it caused, and a
product event for most of them; a membership batch of k users writes k of
each. A :class:`Journal` collects them while the change is worked out, and
:meth:`Journal.write` writes them in their order:

- on PostgreSQL, in ONE statement: data-modifying ``WITH`` clauses insert and
  update the snapshots, the audit entries and the events, read from JSON
  arrays (``json_to_recordset``), and the statement inserts the events'
  deliveries, so a change costs one round trip whatever k is;
- on SQLite (in-process, no round trips; no data-modifying ``WITH``), one
  multi-row statement per kind (:func:`connector.trail.audit.record_all`,
  :func:`connector.trail.events.write_events`).

Entries and events keep their order: their ids ascend as they were collected.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Insert,
    Integer,
    String,
    Text,
    bindparam,
    column,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from connector.db.base import UTCDateTime, utcnow
from connector.derived.tables import ACCESS_SNAPSHOTS
from connector.metrics import count_journal
from connector.trail import audit
from connector.trail.audit import AUDIT_LOG
from connector.trail.cause import Cause
from connector.trail.events import (
    EVENT_DELIVERIES,
    EVENT_ENDPOINTS,
    EVENTS,
    Announcement,
    bump_counter,
    write_events,
)

__all__ = ["Announcement", "Journal"]

_INSERT_SNAPSHOTS = insert(ACCESS_SNAPSHOTS)
_UPDATE_SNAPSHOTS = (
    update(ACCESS_SNAPSHOTS)
    .where(ACCESS_SNAPSHOTS.c.user_id == bindparam("snapshot_user_id"))
    .values(access=bindparam("snapshot_access"), updated_at=bindparam("snapshot_updated_at"))
)


@dataclass
class Journal:
    """Snapshots, audit entries and product events of one change, until :meth:`write`."""

    new_snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed_snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: list[audit.Entry] = field(default_factory=list)
    announcements: list[Announcement] = field(default_factory=list)

    def snapshot(self, user_id: str, access: dict[str, Any], *, new: bool) -> None:
        """Store ``access`` (:meth:`DerivedAccess.to_json`) as the user's snapshot."""
        (self.new_snapshots if new else self.changed_snapshots)[user_id] = access

    def audit(
        self,
        cause: Cause,
        action: str,
        target: str,
        before: Any = None,
        after: Any = None,
        *,
        reason: str | None = None,
    ) -> None:
        """An entry by ``cause``'s actor; its reason is the cause's unless ``reason`` is given."""
        self.entries.append(
            audit.Entry(
                cause.actor,
                action,
                target,
                before,
                after,
                cause.reason if reason is None else reason,
            )
        )

    def announce(self, kind: str, subject: str, payload: dict[str, Any]) -> None:
        self.announcements.append(Announcement(kind, subject, payload))

    def write(self, session: Session, org_id: int) -> None:
        """Write what was collected, in the caller's transaction, and start empty again."""
        if self.new_snapshots or self.changed_snapshots or self.entries or self.announcements:
            if session.get_bind().dialect.name == "postgresql":
                self._write_at_once(session, org_id)
            else:
                self._write_each(session, org_id)
            count_journal([entry.action for entry in self.entries])
        self.new_snapshots, self.changed_snapshots = {}, {}
        self.entries, self.announcements = [], []

    def _write_each(self, session: Session, org_id: int) -> None:
        now = utcnow()
        if self.changed_snapshots:
            session.execute(
                _UPDATE_SNAPSHOTS,
                [
                    {"snapshot_user_id": user, "snapshot_access": data, "snapshot_updated_at": now}
                    for user, data in self.changed_snapshots.items()
                ],
            )
        if self.new_snapshots:
            session.execute(
                _INSERT_SNAPSHOTS,
                [
                    {"user_id": user, "org_id": org_id, "access": data, "updated_at": now}
                    for user, data in self.new_snapshots.items()
                ],
            )
        audit.record_all(session, org_id, self.entries)
        write_events(session, org_id, self.announcements)

    def _write_at_once(self, session: Session, org_id: int) -> None:
        session.execute(
            _WRITE_AT_ONCE,
            {
                "journal_org_id": org_id,
                "journal_now": utcnow(),
                "journal_event_count": len(self.announcements),
                "new_snapshots": [
                    {"user_id": user, "access": data} for user, data in self.new_snapshots.items()
                ],
                "changed_snapshots": [
                    {"user_id": user, "access": data}
                    for user, data in self.changed_snapshots.items()
                ],
                "entries": [
                    {
                        "n": n,
                        "actor": entry.actor,
                        "action": entry.action,
                        "target": entry.target,
                        "before": entry.before,
                        "after": entry.after,
                        "reason": entry.reason,
                    }
                    for n, entry in enumerate(self.entries)
                ],
                "events": [
                    {
                        "n": n,
                        "uid": str(uuid.uuid4()),
                        "type": item.type,
                        "subject": item.subject,
                        "payload": item.payload,
                    }
                    for n, item in enumerate(self.announcements)
                ],
            },
        )


def _rows(name: str, *columns: tuple[str, Any]) -> Any:
    """The rows of the JSON array parameter ``name``: ``json_to_recordset(:name) AS ...``."""
    return (
        func.json_to_recordset(bindparam(name, type_=JSON()))
        .table_valued(*(column(key, type_) for key, type_ in columns))
        .render_derived(name=f"{name}_rows", with_types=True)
    )


def _json_or_null(value: Any) -> Any:
    # A JSON null comes out of json_to_recordset as SQL NULL; the other path
    # stores JSON null, and so must this one.
    return func.coalesce(value, literal_column("'null'::json"))


def _write_at_once_statement() -> Insert:
    """The PostgreSQL statement of :meth:`Journal._write_at_once`, built once."""
    # Not named after a column: an UPDATE would take a parameter so named as a SET value.
    org_id = bindparam("journal_org_id", type_=Integer())
    now = bindparam("journal_now", type_=UTCDateTime())
    event_count = bindparam("journal_event_count", type_=Integer())
    new = _rows("new_snapshots", ("user_id", String()), ("access", JSON()))
    changed = _rows("changed_snapshots", ("user_id", String()), ("access", JSON()))
    entries = _rows(
        "entries",
        ("n", Integer()),
        ("actor", String()),
        ("action", String()),
        ("target", String()),
        ("before", JSON()),
        ("after", JSON()),
        ("reason", Text()),
    )
    events = _rows(
        "events",
        ("n", Integer()),
        ("uid", String()),
        ("type", String()),
        ("subject", String()),
        ("payload", JSON()),
    )
    inserted_snapshots = (
        insert(ACCESS_SNAPSHOTS)
        .from_select(
            ["user_id", "org_id", "access", "updated_at"],
            select(new.c.user_id, org_id, new.c.access, now),
        )
        .cte("inserted_snapshots")
    )
    updated_snapshots = (
        update(ACCESS_SNAPSHOTS)
        .where(ACCESS_SNAPSHOTS.c.user_id == changed.c.user_id)
        .values(access=changed.c.access, updated_at=now)
        .cte("updated_snapshots")
    )
    appended = (
        insert(AUDIT_LOG)
        .from_select(
            ["org_id", "at", "actor", "action", "target", "before", "after", "reason"],
            select(
                org_id,
                now,
                entries.c.actor,
                entries.c.action,
                entries.c.target,
                _json_or_null(entries.c.before),
                _json_or_null(entries.c.after),
                entries.c.reason,
            ).order_by(entries.c.n),
        )
        .cte("appended")
    )
    # The organization's counter moves by the number of events (not at all
    # without any); event n of this change gets last - count + 1 + n.
    counted = bump_counter("postgresql", org_id, event_count).cte("counted")
    announced = (
        insert(EVENTS)
        .from_select(
            ["uid", "org_id", "sequence", "type", "subject", "payload", "created_at"],
            select(
                events.c.uid,
                org_id,
                counted.c.last_sequence - event_count + 1 + events.c.n,
                events.c.type,
                events.c.subject,
                events.c.payload,
                now,
            )
            .select_from(events.join(counted, literal(True)))
            .order_by(events.c.n),
        )
        .returning(EVENTS.c.id)
        .cte("announced")
    )
    return (
        insert(EVENT_DELIVERIES)
        .from_select(
            ["event_id", "endpoint_id", "attempts", "next_attempt_at", "last_error"],
            select(announced.c.id, EVENT_ENDPOINTS.c.id, literal(0), now, literal("")).join_from(
                announced, EVENT_ENDPOINTS, EVENT_ENDPOINTS.c.org_id == org_id
            ),
        )
        .add_cte(inserted_snapshots, updated_snapshots, appended)
    )


_WRITE_AT_ONCE = _write_at_once_statement()
