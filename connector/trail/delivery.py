"""Delivering the events outbox to products' webhooks (docs/webhooks.md).

One round: :func:`claim_due` claims due deliveries and commits, so no
database lock is held while posting; :func:`post_deliveries` POSTs them, each
endpoint in a thread of its own so that a slow endpoint delays only itself,
each POST signed when it is sent and bounded by an overall deadline
(:mod:`connector.trail.egress`); :func:`record_outcomes` marks what arrived,
schedules retries with exponential backoff, and dead-letters a delivery that
failed :attr:`DeliveryPolicy.max_attempts` times or is older than
:attr:`DeliveryPolicy.max_age`. A dead-lettered delivery is no longer tried;
``hub-scim health`` flags its endpoint until ``hub-scim events replay``
queues it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.db.base import utcnow
from connector.trail.egress import (
    Destination,
    ForbiddenDestination,
    IPNetwork,
    post_pinned,
    resolve_destination,
)
from connector.trail.events import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    Event,
    EventDelivery,
    EventEndpoint,
    event_body,
    sign_all,
)

CLAIM_LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)
# After an endpoint fails, its other deliveries of the round wait this long.
FAILING_ENDPOINT_PAUSE = timedelta(minutes=1)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the deliverer tries (``HUB_SCIM_WEBHOOK_*`` settings)."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    timeout_seconds: float = 10.0
    max_attempts: int = 15
    max_age: timedelta = timedelta(hours=72)
    # Endpoints posted to at once.
    concurrency: int = 8
    # A round stops starting new POSTs after this long; the rest wait for the next.
    round_budget_seconds: float = 60.0


@dataclass(frozen=True)
class PendingDelivery:
    """A claimed delivery, detached from the database to be posted outside a transaction."""

    event_id: int
    endpoint_id: str
    event_uid: str
    url: str
    secrets: tuple[str, ...]
    body: bytes
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one POST came to. ``skipped``: not attempted this round (no attempt counted)."""

    pending: PendingDelivery
    status: int = 0
    error: str = ""
    skipped: bool = False

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    failing_endpoints: set[str] = field(default_factory=set)

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed + self.dead_lettered


def claim_due(
    session: Session,
    *,
    now: datetime | None = None,
    limit: int = 100,
    org_id: int | None = None,
) -> list[PendingDelivery]:
    """Claim due deliveries (of every organization, or ``org_id``'s); the caller commits.

    A claim pushes ``next_attempt_at`` a lease ahead, so a deliverer that dies
    mid-round only delays its deliveries. Rows are taken with ``FOR UPDATE
    SKIP LOCKED`` on PostgreSQL so several instances deliver side by side.
    """
    moment = now or utcnow()
    query = (
        select(EventDelivery, Event, EventEndpoint)
        .join(Event, Event.id == EventDelivery.event_id)
        .join(EventEndpoint, EventEndpoint.id == EventDelivery.endpoint_id)
        .where(
            EventDelivery.delivered_at.is_(None),
            EventDelivery.dead_at.is_(None),
            EventDelivery.next_attempt_at <= moment,
        )
    )
    if org_id is not None:
        query = query.where(EventEndpoint.org_id == org_id)
    due = session.execute(
        query.order_by(EventDelivery.event_id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=EventDelivery)
    ).all()
    claimed = []
    for delivery, event, endpoint in due:
        delivery.attempts += 1
        delivery.next_attempt_at = moment + CLAIM_LEASE
        claimed.append(
            PendingDelivery(
                event_id=delivery.event_id,
                endpoint_id=delivery.endpoint_id,
                event_uid=event.uid,
                url=endpoint.url,
                secrets=endpoint.signing_secrets(moment),
                body=json.dumps(event_body(event), separators=(",", ":")).encode(),
                attempts=delivery.attempts,
                created_at=event.created_at,
            )
        )
    session.flush()
    return claimed


Clock = Callable[[], float]


def _post_one(
    item: PendingDelivery, destination: Destination, policy: DeliveryPolicy, clock: Clock
) -> DeliveryOutcome:
    # Signed now, not when claimed: a retry carries a fresh timestamp.
    headers = {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: item.event_uid,
        SIGNATURE_HEADER: sign_all(item.secrets, int(clock()), item.body),
    }
    try:
        result = post_pinned(
            destination, item.body, headers, deadline_seconds=policy.timeout_seconds
        )
    except Exception as error:  # any transport failure is retried later
        return DeliveryOutcome(item, 0, f"{type(error).__name__}: {error}")
    if 200 <= result.status < 300:
        return DeliveryOutcome(item, result.status)
    if 300 <= result.status < 400:
        return DeliveryOutcome(
            item, result.status, f"HTTP {result.status}: redirects are not followed"
        )
    return DeliveryOutcome(item, result.status, f"HTTP {result.status}")


def _post_endpoint(
    items: list[PendingDelivery], policy: DeliveryPolicy, round_ends: float, clock: Clock
) -> list[DeliveryOutcome]:
    """One endpoint's deliveries in order; after a failure the rest wait for a later round."""
    try:
        destination = resolve_destination(items[0].url, policy.allowed_networks)
    except ForbiddenDestination as error:
        return [DeliveryOutcome(item, 0, f"refused: {error}") for item in items]
    outcomes: list[DeliveryOutcome] = []
    failed = False
    for item in items:
        if failed or time.monotonic() >= round_ends:
            outcomes.append(DeliveryOutcome(item, skipped=True, error="failing" if failed else ""))
            continue
        outcome = _post_one(item, destination, policy, clock)
        failed = not outcome.delivered
        outcomes.append(outcome)
    return outcomes


def post_deliveries(
    pending: Iterable[PendingDelivery], policy: DeliveryPolicy, *, clock: Clock = time.time
) -> list[DeliveryOutcome]:
    """POST the claimed deliveries, endpoints concurrently; touches no database."""
    by_endpoint: dict[str, list[PendingDelivery]] = {}
    for item in pending:
        by_endpoint.setdefault(item.endpoint_id, []).append(item)
    if not by_endpoint:
        return []
    round_ends = time.monotonic() + policy.round_budget_seconds
    workers = max(1, min(policy.concurrency, len(by_endpoint)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook") as pool:
        results = pool.map(
            lambda items: _post_endpoint(items, policy, round_ends, clock), by_endpoint.values()
        )
        return [outcome for outcomes in results for outcome in outcomes]


def record_outcomes(
    session: Session,
    outcomes: list[DeliveryOutcome],
    policy: DeliveryPolicy,
    *,
    now: datetime | None = None,
) -> DeliveryReport:
    """Mark delivered rows, schedule retries, dead-letter the hopeless; the caller commits."""
    moment = now or utcnow()
    report = DeliveryReport()
    for outcome in outcomes:
        pending = outcome.pending
        delivery = session.get(EventDelivery, (pending.event_id, pending.endpoint_id))
        if delivery is None or delivery.delivered_at is not None:
            continue  # the endpoint was removed meanwhile
        if outcome.skipped:
            delivery.attempts -= 1
            delivery.next_attempt_at = moment + (
                FAILING_ENDPOINT_PAUSE if outcome.error else timedelta(0)
            )
            report.skipped += 1
        elif outcome.delivered:
            delivery.delivered_at = moment
            delivery.last_error = ""
            report.delivered += 1
        else:
            delivery.last_error = outcome.error[:1000]
            report.failing_endpoints.add(pending.endpoint_id)
            too_old = moment - pending.created_at >= policy.max_age
            if pending.attempts >= policy.max_attempts or too_old:
                delivery.dead_at = moment
                report.dead_lettered += 1
            else:
                backoff = min(timedelta(seconds=2**pending.attempts), MAX_BACKOFF)
                delivery.next_attempt_at = moment + backoff
                report.failed += 1
    session.flush()
    return report
