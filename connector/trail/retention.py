"""How long the trail keeps personal data, per organization, and the pruning that enforces it.

docs/personal-data.md#retention.

Three kinds of rows expire: audit entries (:data:`AUDIT`), events
(:data:`EVENTS`, only once delivered: an event with a delivery still pending
or dead-lettered is never pruned) and the provisioning log
(:data:`REQUEST_LOG`). Each organization may set its own period per kind
(``hub-scim retention set``, a row of ``retention_settings``); a kind it did
not set takes the service's default (:class:`RetentionPeriods`, from
``HUB_SCIM_*_RETENTION_DAYS``).

Pruning walks one organization's rows oldest first along an index each
table already has (``(org_id, id)``, events' ``(org_id, sequence)``: both
ascend with time), deletes by
primary key, and stops at the first row young enough to keep: each batch
reads at most ``batch`` rows, however large the table. One batch is one short
transaction of its own (:func:`prune`), so that no lock is held for long: on
PostgreSQL a batch locks only the rows it deletes, which no SCIM write ever
touches again; on SQLite it holds the one write lock for a few milliseconds,
and :func:`prune` pauses between batches so a waiting SCIM write takes the
lock first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    exists,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from connector.db.base import Base, UTCDateTime, table_of, utcnow
from connector.db.engine import READ_ONLY
from connector.settings import Settings
from connector.tenancy.tables import ORGANIZATIONS
from connector.trail.audit import AUDIT_LOG
from connector.trail.cause import Cause
from connector.trail.events import EVENT_DELIVERIES, EVENTS
from connector.trail.journal import Journal
from connector.trail.request_log import SCIM_REQUEST_LOG

logger = logging.getLogger(__name__)

AUDIT = "audit"
EVENTS_KIND = "events"
REQUEST_LOG = "request_log"
KINDS = (AUDIT, EVENTS_KIND, REQUEST_LOG)
# The column of ``retention_settings`` (and field of RetentionPeriods) of each kind.
COLUMNS = {AUDIT: "audit_days", EVENTS_KIND: "event_days", REQUEST_LOG: "request_log_days"}

DEFAULT_AUDIT_DAYS = 400
DEFAULT_EVENT_DAYS = 30
DEFAULT_REQUEST_LOG_DAYS = 30

# The shortest period each kind may be set to. The audit trail answers
# security questions asked months later: a shorter period is a mistake.
MINIMUM_DAYS = {AUDIT: 90, EVENTS_KIND: 1, REQUEST_LOG: 1}
MAXIMUM_DAYS = 36_500

PRUNE_BATCH = 500
# On SQLite, a waiting writer polls for the write lock at intervals of up to
# 100 ms (sqlite3_busy_timeout): pausing longer between batches lets it in.
SQLITE_PAUSE_SECONDS = 0.12


class RetentionSetting(Base):
    """An organization's own retention periods; a NULL period takes the service's default."""

    __tablename__ = "retention_settings"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    audit_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    event_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    request_log_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


RETENTION_SETTINGS = table_of(RetentionSetting)


@dataclass(frozen=True)
class RetentionPeriods:
    """Days each kind of row is kept (events: days after their last delivery)."""

    audit_days: int = DEFAULT_AUDIT_DAYS
    event_days: int = DEFAULT_EVENT_DAYS
    request_log_days: int = DEFAULT_REQUEST_LOG_DAYS

    def days(self, kind: str) -> int:
        days: int = getattr(self, COLUMNS[kind])
        return days

    def to_json(self) -> dict[str, int]:
        return {column: getattr(self, column) for column in COLUMNS.values()}


@dataclass(frozen=True)
class OrgRetention:
    """An organization's periods in force, and which of them it set itself."""

    periods: RetentionPeriods
    own: frozenset[str]

    def to_json(self) -> dict[str, Any]:
        return {kind: {"days": self.periods.days(kind), "set": kind in self.own} for kind in KINDS}


def check_days(kind: str, days: int) -> None:
    """Raise ValueError unless ``days`` is a period ``kind`` may be set to."""
    if not MINIMUM_DAYS[kind] <= days <= MAXIMUM_DAYS:
        raise ValueError(
            f"{kind} retention must be {MINIMUM_DAYS[kind]} to {MAXIMUM_DAYS} days, got {days}"
        )


def _resolved(row: Any, defaults: RetentionPeriods) -> OrgRetention:
    if row is None:
        return OrgRetention(defaults, frozenset())
    own = frozenset(kind for kind, column in COLUMNS.items() if row._mapping[column] is not None)
    return OrgRetention(
        RetentionPeriods(
            **{
                column: row._mapping[column] or getattr(defaults, column)
                for column in COLUMNS.values()
            }
        ),
        own,
    )


def org_retention(session: Session, org_id: int, defaults: RetentionPeriods) -> OrgRetention:
    """The periods in force for ``org_id``."""
    row = session.execute(
        select(RETENTION_SETTINGS).where(RETENTION_SETTINGS.c.org_id == org_id)
    ).first()
    return _resolved(row, defaults)


def all_retention(
    connection: Connection, defaults: RetentionPeriods
) -> dict[int, RetentionPeriods]:
    """The periods in force for every organization, by id."""
    rows = connection.execute(
        select(ORGANIZATIONS.c.id, RETENTION_SETTINGS).join_from(
            ORGANIZATIONS,
            RETENTION_SETTINGS,
            RETENTION_SETTINGS.c.org_id == ORGANIZATIONS.c.id,
            isouter=True,
        )
    ).all()
    return {
        row.id: _resolved(row if row.org_id is not None else None, defaults).periods for row in rows
    }


# -- pruning ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Batch:
    deleted: int
    last_key: int
    done: bool


def _head(
    connection: Connection,
    table: Table,
    key: str,
    moment: str,
    org_id: int,
    after: int,
    batch: int,
) -> list[tuple[int, int, datetime]]:
    """The next ``batch`` rows of ``org_id`` after ``after`` by ``key``: key, id and time.

    ``key`` leads an index with ``org_id``, so the read stops after ``batch`` rows.
    """
    column = table.c[key]
    return [
        (row[0], row[1], row[2])
        for row in connection.execute(
            select(column, table.c.id, table.c[moment])
            .where(table.c.org_id == org_id, column > after)
            .order_by(column)
            .limit(batch)
        )
    ]


def _older(
    rows: Sequence[tuple[int, int, datetime]], cutoff: datetime
) -> tuple[list[int], int | None, bool]:
    """Ids of the rows before the first at or after ``cutoff``, the last key, whether met."""
    ids: list[int] = []
    last: int | None = None
    for key, row_id, moment in rows:
        if moment >= cutoff:
            return ids, last, True
        ids.append(row_id)
        last = key
    return ids, last, False


def _prune_timed(table: Table) -> Callable[[Connection, int, datetime, int, int], _Batch]:
    """Prune ``table``'s rows whose ``at`` is before the cutoff, along ``(org_id, id)``."""

    def prune_batch(
        connection: Connection, org_id: int, cutoff: datetime, after: int, batch: int
    ) -> _Batch:
        rows = _head(connection, table, "id", "at", org_id, after, batch)
        ids, last, met = _older(rows, cutoff)
        if ids:
            connection.execute(delete(table).where(table.c.id.in_(ids)))
        return _Batch(len(ids), after if last is None else last, met or len(rows) < batch)

    return prune_batch


def _prune_events_batch(
    connection: Connection, org_id: int, cutoff: datetime, after: int, batch: int
) -> _Batch:
    """Events older than ``cutoff`` whose every delivery arrived before ``cutoff``.

    An event with a delivery pending or dead-lettered is stepped over, never
    deleted: it waits for its delivery or for ``hub-scim events replay``.
    """
    rows = _head(connection, EVENTS, "sequence", "created_at", org_id, after, batch)
    ids, last, met = _older(rows, cutoff)
    deliveries = EVENT_DELIVERIES.c
    unfinished = or_(deliveries.delivered_at.is_(None), deliveries.delivered_at >= cutoff)
    deleted = 0
    if ids:
        kept = set(
            connection.scalars(
                select(deliveries.event_id).where(deliveries.event_id.in_(ids), unfinished)
            )
        )
        gone = [event_id for event_id in ids if event_id not in kept]
        if gone:
            connection.execute(
                delete(EVENT_DELIVERIES).where(
                    deliveries.event_id.in_(gone), deliveries.delivered_at < cutoff
                )
            )
            # Checked again in the deleting statement: a replay may have queued one meanwhile.
            deleted = connection.execute(
                delete(EVENTS).where(
                    EVENTS.c.id.in_(gone),
                    ~exists().where(deliveries.event_id == EVENTS.c.id),
                )
            ).rowcount
    return _Batch(deleted, after if last is None else last, met or len(rows) < batch)


_PRUNERS: dict[str, Callable[[Connection, int, datetime, int, int], _Batch]] = {
    AUDIT: _prune_timed(AUDIT_LOG),
    EVENTS_KIND: _prune_events_batch,
    REQUEST_LOG: _prune_timed(SCIM_REQUEST_LOG),
}


@dataclass
class PruneReport:
    """Rows pruned, by organization id and kind; ``batches``: transactions committed."""

    pruned: dict[int, dict[str, int]] = field(default_factory=dict)
    batches: int = 0

    def total(self, kind: str | None = None) -> int:
        return sum(
            count
            for counts in self.pruned.values()
            for name, count in counts.items()
            if kind is None or name == kind
        )


def prune(
    engine: Engine,
    defaults: RetentionPeriods,
    *,
    kinds: Iterable[str] = KINDS,
    org_ids: Iterable[int] | None = None,
    batch: int = PRUNE_BATCH,
    pause_seconds: float | None = None,
    now: datetime | None = None,
    on_batch: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
    max_batches: int | None = None,
) -> PruneReport:
    """Delete what each organization keeps no longer, one short transaction per batch.

    ``pause_seconds`` between batches defaults to :data:`SQLITE_PAUSE_SECONDS`
    on SQLite and none on PostgreSQL. Audit entries pruned from an
    organization's trail are recorded in it (``retention.pruned``), so the
    trail says where it now begins. ``stop`` (set by a signal) and
    ``max_batches`` end the run early; the next run goes on from there.
    """
    moment = now or utcnow()
    wanted = tuple(kinds)
    if pause_seconds is None:
        pause_seconds = SQLITE_PAUSE_SECONDS if engine.dialect.name == "sqlite" else 0.0
    with engine.connect() as connection:
        periods = all_retention(connection, defaults)
        connection.rollback()
    selected = set(org_ids) if org_ids is not None else None
    chosen = {
        org_id: org_periods
        for org_id, org_periods in periods.items()
        if selected is None or org_id in selected
    }
    due = _due(engine, chosen, wanted, moment)
    report = PruneReport()
    for org_id, org_periods in sorted(chosen.items()):
        counts: dict[str, int] = {}
        for kind in wanted:
            if (org_id, kind) not in due:
                continue
            cutoff = moment - timedelta(days=org_periods.days(kind))
            pruned, last = 0, 0
            while True:
                if (stop is not None and stop.is_set()) or (
                    max_batches is not None and report.batches >= max_batches
                ):
                    break
                with engine.begin() as connection:
                    result = _PRUNERS[kind](connection, org_id, cutoff, last, batch)
                report.batches += 1
                pruned += result.deleted
                last = result.last_key
                if on_batch is not None:
                    on_batch()
                if result.done:
                    break
                if pause_seconds:
                    time.sleep(pause_seconds)
            if pruned:
                counts[kind] = pruned
            if kind == AUDIT and pruned:
                _record_audit_pruned(engine, org_id, pruned, cutoff)
        if counts:
            report.pruned[org_id] = counts
            logger.info("retention: organization %d pruned %s", org_id, counts)
    return report


_OLDEST = {
    AUDIT: (AUDIT_LOG, "id", "at"),
    EVENTS_KIND: (EVENTS, "sequence", "created_at"),
    REQUEST_LOG: (SCIM_REQUEST_LOG, "id", "at"),
}


def _due(
    engine: Engine, periods: dict[int, RetentionPeriods], kinds: Sequence[str], now: datetime
) -> set[tuple[int, str]]:
    """The (organization, kind) pairs whose oldest row is past its period.

    One indexed read of one row each, in a transaction that only reads: on
    SQLite it takes no write lock, so an organization with nothing to prune
    costs writers nothing.
    """
    due = set()
    with engine.connect() as connection:
        reader = connection.execution_options(**{READ_ONLY: True})
        for org_id, org_periods in periods.items():
            for kind in kinds:
                table, key, moment = _OLDEST[kind]
                oldest = reader.scalar(
                    select(table.c[moment])
                    .where(table.c.org_id == org_id)
                    .order_by(table.c[key])
                    .limit(1)
                )
                if oldest is not None and oldest < now - timedelta(days=org_periods.days(kind)):
                    due.add((org_id, kind))
            reader.rollback()
    return due


def _record_audit_pruned(engine: Engine, org_id: int, pruned: int, cutoff: datetime) -> None:
    journal = Journal()
    journal.audit(
        Cause("retention", "retention period of the audit trail"),
        "retention.pruned",
        "audit",
        None,
        {"audit_entries": pruned, "older_than": cutoff.isoformat().replace("+00:00", "Z")},
    )
    with Session(engine) as session:
        journal.write(session, org_id)
        session.commit()


def retention_defaults(settings: Settings) -> RetentionPeriods:
    """The service's default periods (``HUB_SCIM_*_RETENTION_DAYS``)."""
    return RetentionPeriods(
        audit_days=settings.audit_retention_days,
        event_days=settings.event_retention_days,
        request_log_days=settings.request_log_retention_days,
    )
