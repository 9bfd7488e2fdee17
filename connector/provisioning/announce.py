"""What one change appends beside the directory, written together (DESIGN.md rules 11 and 12).

A SCIM write appends an audit entry for itself, one per access change and
Owner seating step it caused, and a product event for most of them; a
membership batch of k users appends k of each. A :class:`Journal` collects
them while the change is worked out and :meth:`Journal.write` appends them in
their order: one multi-row INSERT of audit entries, one of events and one of
the events' deliveries (:func:`connector.events.write_events`), whatever k is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from connector import audit
from connector.events import Announcement, write_events
from connector.provisioning.context import Cause

__all__ = ["Announcement", "Journal"]


@dataclass
class Journal:
    """Audit entries and product events of one change, in order, until :meth:`write`."""

    entries: list[audit.Entry] = field(default_factory=list)
    announcements: list[Announcement] = field(default_factory=list)

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
        """Append what was collected, in the caller's transaction, and start empty again."""
        audit.record_all(session, org_id, self.entries)
        write_events(session, org_id, self.announcements)
        self.entries = []
        self.announcements = []
