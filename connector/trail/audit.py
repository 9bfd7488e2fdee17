"""The append-only audit trail (docs/rules.md#audit).

Every change to the directory, to derived access (with the rule that caused
it), to mappings and to product states is appended here with actor,
time, before and after, in the same transaction as the change itself. Rows are
never updated or deleted: a deleted user's history stays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from connector.db.base import Base, UTCDateTime, table_of, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_org_id_id", "org_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")


AUDIT_LOG = table_of(AuditEntry)


@dataclass(frozen=True)
class AuditRecord:
    """One audit line as the CLI and API show it."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Entry:
    """One line to append: who did what to which target, before and after, and why."""

    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None
    reason: str = ""


# Core, built once: appending needs neither the unit of work nor the new ids back.
_APPEND = insert(AUDIT_LOG)


def record_all(session: Session, org_id: int, entries: Sequence[Entry]) -> None:
    """Append ``entries`` in their order, in one statement, within the caller's transaction.

    Written at once, not at the next flush: flush first what they refer to.
    Every writer appends through :class:`connector.trail.journal.Journal`, which
    calls this on SQLite and writes the same rows in its one statement on PostgreSQL.
    """
    if not entries:
        return
    at = utcnow()
    session.execute(
        _APPEND,
        [
            {
                "org_id": org_id,
                "at": at,
                "actor": entry.actor,
                "action": entry.action,
                "target": entry.target,
                "before": entry.before,
                "after": entry.after,
                "reason": entry.reason,
            }
            for entry in entries
        ],
    )


def iter_entries(
    session: Session, org_id: int, *, after_id: int = 0, batch: int = 500
) -> Iterator[AuditRecord]:
    """Every entry of one organization, oldest first, read in keyset-paged batches."""
    last = after_id
    while True:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.org_id == org_id, AuditEntry.id > last)
            .order_by(AuditEntry.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        for row in rows:
            yield AuditRecord(
                id=row.id,
                at=row.at,
                actor=row.actor,
                action=row.action,
                target=row.target,
                before=row.before,
                after=row.after,
                reason=row.reason,
            )
        last = rows[-1].id
