"""Product events: written with the change, signed, delivered at least once, retried later."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from connector.db.base import utcnow
from connector.trail.events import (
    SIGNATURE_HEADER,
    EventDelivery,
    add_endpoint,
    claim_due,
    emit,
    post_deliveries,
    record_outcomes,
    sign,
    verify,
)


class FlakyWebhook:
    """Fails the first ``failures`` posts, then answers 204, recording every body."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[bytes, Mapping[str, str]]] = []

    def post(self, url: str, *, data: bytes, headers: Mapping[str, str], timeout: float) -> Any:
        self.received.append((data, headers))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("webhook down")
        return type("Response", (), {"status_code": 204})()


def deliver_round(session: Session, webhook: FlakyWebhook, now: Any) -> tuple[int, int]:
    claimed = claim_due(session, now=now)
    session.commit()
    report = record_outcomes(session, post_deliveries(claimed, webhook), now=now)
    session.commit()
    return report.delivered, report.failed


def test_a_deactivation_event_reaches_a_flaky_webhook_once_it_recovers(
    session: Session, org_id: int
) -> None:
    endpoint_id, secret = add_endpoint(session, org_id, "https://psa.example/hooks/hub")
    emit(session, org_id, "user.deactivated", "user-1", {"end_sessions": True})
    session.commit()
    webhook = FlakyWebhook(failures=1)
    now = utcnow()

    assert deliver_round(session, webhook, now) == (0, 1)
    # Not due again until the backoff has passed: nothing is sent twice at once.
    assert deliver_round(session, webhook, now) == (0, 0)
    assert deliver_round(session, webhook, now + timedelta(seconds=3)) == (1, 0)
    assert deliver_round(session, webhook, now + timedelta(hours=2)) == (0, 0)

    body, headers = webhook.received[-1]
    assert json.loads(body)["type"] == "user.deactivated"
    assert json.loads(body)["data"] == {"end_sessions": True}
    assert verify(secret, headers[SIGNATURE_HEADER], body, now=int(now.timestamp()))
    assert not verify("another-secret", headers[SIGNATURE_HEADER], body, now=int(now.timestamp()))
    delivery = session.query(EventDelivery).filter_by(endpoint_id=endpoint_id).one()
    assert delivery.attempts == 2
    assert delivery.delivered_at is not None


def test_a_stale_or_tampered_signature_is_refused() -> None:
    header = sign("s3cret", 1_700_000_000, b'{"a":1}')
    assert verify("s3cret", header, b'{"a":1}', now=1_700_000_100)
    assert not verify("s3cret", header, b'{"a":2}', now=1_700_000_100)
    assert not verify("s3cret", header, b'{"a":1}', now=1_700_001_000)
    assert not verify("s3cret", "garbage", b'{"a":1}', now=1_700_000_100)
