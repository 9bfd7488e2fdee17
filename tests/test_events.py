"""Product events: numbered per organization, signed at send time, delivered to safe addresses
only, within a deadline, concurrently, retried, dead-lettered, replayed.

Webhooks are real HTTP servers on loopback ports, allowed through the
operator's allow-list as a deployment would allow an internal product.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.admin.health import health_report
from connector.admin.webhooks import (
    add_webhook,
    list_webhooks,
    remove_webhook,
    replay_events,
    rotate_secret,
)
from connector.db.base import utcnow
from connector.errors import InvalidInput
from connector.tenancy.tables import Organization
from connector.trail.audit import iter_entries
from connector.trail.delivery import (
    DeliveryPolicy,
    DeliveryReport,
    claim_due,
    post_deliveries,
    record_outcomes,
)
from connector.trail.egress import (
    DeadlineExceeded,
    Destination,
    ForbiddenDestination,
    post_pinned,
)
from connector.trail.events import (
    SIGNATURE_HEADER,
    Event,
    EventDelivery,
    emit,
    events_after,
    sign,
    verify,
)
from connector.trail.journal import Journal
from tests.scenarios import PATCH_SCHEMA, Hub, Idp
from tests.webhook_receiver import Receiver, running

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
POLICY = DeliveryPolicy(allowed_networks=LOOPBACK, timeout_seconds=5.0, max_attempts=3)


@pytest.fixture
def psa() -> Iterator[Receiver]:
    with running(Receiver()) as receiver:
        yield receiver


def hook(session: Session, org_id: int, url: str) -> tuple[str, str]:
    return add_webhook(session, org_id, url, actor="cli:it", allowed_networks=LOOPBACK)


def deliver_round(
    session: Session,
    org_id: int,
    policy: DeliveryPolicy = POLICY,
    *,
    later: timedelta = timedelta(0),
) -> DeliveryReport:
    now = utcnow() + later
    claimed = claim_due(session, now=now, org_id=org_id)
    session.commit()
    report = record_outcomes(session, post_deliveries(claimed, policy), policy, now=now)
    session.commit()
    return report


def test_a_deactivation_reaches_a_flaky_webhook_signed_when_sent(
    session: Session, org_id: int
) -> None:
    with running(Receiver(statuses=[503, 204])) as webhook:
        endpoint_id, secret = hook(session, org_id, webhook.url)
        emit(session, org_id, "user.deactivated", "user-1", {"end_sessions": True})
        session.commit()

        first = deliver_round(session, org_id)
        # Not due again until the backoff has passed: nothing is sent twice at once.
        assert deliver_round(session, org_id).attempted == 0
        # The retry, an hour later, carries that hour's timestamp, not the claim's.
        retried = deliver_round(session, org_id, later=timedelta(hours=1))

    assert (first.failed, retried.delivered) == (1, 1)
    last = webhook.received[-1]
    body = json.loads(last.body)
    assert (body["type"], body["data"]) == ("user.deactivated", {"end_sessions": True})
    signed_at = int(last.headers[SIGNATURE_HEADER].split(",")[0].removeprefix("t="))
    assert abs(signed_at - time.time()) < 120
    assert verify(secret, last.headers[SIGNATURE_HEADER], last.body, now=int(time.time()))
    delivery = session.scalars(select(EventDelivery).filter_by(endpoint_id=endpoint_id)).one()
    assert (delivery.attempts, delivery.delivered_at is not None) == (2, True)


def test_a_stale_or_tampered_signature_is_refused() -> None:
    header = sign("s3cret", 1_700_000_000, b'{"a":1}')
    assert verify("s3cret", header, b'{"a":1}', now=1_700_000_100)
    assert not verify("s3cret", header, b'{"a":2}', now=1_700_000_100)
    assert not verify("s3cret", header, b'{"a":1}', now=1_700_001_000)
    assert not verify("s3cret", "garbage", b'{"a":1}', now=1_700_000_100)
    assert not verify("s3cret", f"{header},t=1", b'{"a":1}', now=1_700_000_100)


# -- where a webhook may point ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # the cloud's metadata service
        "http://10.0.0.5/hooks",
        "http://192.168.1.1/hooks",
        "http://127.0.0.1:8000/hooks",
        "http://localhost/hooks",
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://0.0.0.0/hooks",
        "http://224.0.0.1/hooks",
        "http://240.0.0.1/hooks",
        "http://100.64.0.1/hooks",
        "http://user:pw@8.8.8.8/hooks",
    ],
)
def test_a_webhook_to_an_internal_address_is_refused_at_registration(
    session: Session, org_id: int, url: str
) -> None:
    with pytest.raises(ForbiddenDestination):
        add_webhook(session, org_id, url, actor="cli:it")


@pytest.mark.parametrize("url", ["ftp://psa.example/hooks", "http:///no-host", "http://[::1"])
def test_a_webhook_url_that_is_not_http_with_a_host_is_invalid(
    session: Session, org_id: int, url: str
) -> None:
    with pytest.raises(InvalidInput):
        add_webhook(session, org_id, url, actor="cli:it")


def test_the_operators_allow_list_admits_an_internal_network(
    session: Session, org_id: int, psa: Receiver
) -> None:
    with pytest.raises(ForbiddenDestination, match="loopback"):
        add_webhook(session, org_id, psa.url, actor="cli:it")
    endpoint_id, _ = hook(session, org_id, psa.url)
    assert [summary.id for summary in list_webhooks(session, org_id)] == [endpoint_id]


def test_an_address_refused_at_delivery_is_never_posted_to(
    session: Session, org_id: int, psa: Receiver
) -> None:
    endpoint_id, _ = hook(session, org_id, psa.url)
    emit(session, org_id, "user.deactivated", "user-1", {})
    session.commit()

    # The operator withdrew the allow-list after registration.
    report = deliver_round(session, org_id, DeliveryPolicy(allowed_networks=()))

    assert report.failed == 1
    assert psa.received == []
    error = session.scalars(
        select(EventDelivery.last_error).where(EventDelivery.endpoint_id == endpoint_id)
    ).one()
    assert "refused" in error


def test_a_redirect_is_never_followed(session: Session, org_id: int, psa: Receiver) -> None:
    with running(Receiver(statuses=[307], location=psa.url)) as redirector:
        hook(session, org_id, redirector.url)
        emit(session, org_id, "user.deactivated", "user-1", {})
        session.commit()

        report = deliver_round(session, org_id)

    assert (report.failed, len(redirector.received)) == (1, 1)
    assert psa.received == [], "the signed body never reaches the redirect's target"


def test_the_post_goes_to_the_checked_address_whatever_the_name_resolves_to(
    psa: Receiver,
) -> None:
    port = int(psa.url.split(":")[2].split("/")[0])
    # A name that resolves nowhere: only the pinned address can be reached.
    destination = Destination("http", "hooks.psa.invalid", port, "/hooks/hub", ("127.0.0.1",))

    result = post_pinned(
        destination, b"{}", {"Content-Type": "application/json"}, deadline_seconds=5
    )

    assert result.status == 204
    assert psa.received[0].headers["Host"] == f"hooks.psa.invalid:{port}"


# -- deadlines and concurrency ----------------------------------------------------


def test_a_trickling_endpoint_is_cut_off_at_the_deadline() -> None:
    with running(Receiver(trickle_seconds=30)) as slow:
        port = int(slow.url.split(":")[2].split("/")[0])
        destination = Destination("http", "127.0.0.1", port, "/hooks/hub", ("127.0.0.1",))
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            post_pinned(destination, b"{}", {}, deadline_seconds=1)
        elapsed = time.monotonic() - started

    # Per-read timeouts alone would have waited the whole 30 s trickle.
    assert elapsed < 15


def test_a_slow_endpoint_does_not_hold_up_another(session: Session, org_id: int) -> None:
    policy = DeliveryPolicy(allowed_networks=LOOPBACK, timeout_seconds=4.0)
    with running(Receiver(trickle_seconds=30)) as slow, running(Receiver()) as fast:
        hook(session, org_id, slow.url)
        hook(session, org_id, fast.url)
        emit(session, org_id, "user.deactivated", "user-1", {})
        emit(session, org_id, "user.deactivated", "user-2", {})
        session.commit()
        started = time.monotonic()

        report = deliver_round(session, org_id, policy)
        elapsed = time.monotonic() - started

    assert report.delivered == 2
    assert (report.failed, report.skipped) == (1, 1)  # the slow one's second waits
    assert len(fast.received) == 2
    assert fast.received[-1].at - started < policy.timeout_seconds, "not after the slow one"
    assert elapsed < 20


# -- dead letters, replay, rotation, removal ----------------------------------------


def test_a_delivery_that_keeps_failing_is_dead_lettered_flagged_and_replayed(
    session: Session, org_id: int
) -> None:
    with running(Receiver(statuses=[500, 500, 500, 204])) as webhook:
        endpoint_id, _ = hook(session, org_id, webhook.url)
        emit(session, org_id, "user.deactivated", "user-1", {})
        session.commit()
        reports = [
            deliver_round(session, org_id, later=timedelta(hours=hours)) for hours in (0, 1, 2)
        ]
        assert deliver_round(session, org_id, later=timedelta(hours=3)).attempted == 0, "given up"

        assert [r.dead_lettered for r in reports] == [0, 0, 1]
        report = health_report(session, org_id)
        assert not report.healthy
        assert report.to_json()["dead_lettered_webhooks"][0]["id"] == endpoint_id
        assert list_webhooks(session, org_id)[0].dead_lettered == 1

        sequence = session.scalars(select(Event.sequence).where(Event.org_id == org_id)).one()
        replayed = replay_events(session, org_id, sequence, sequence, actor="cli:it")
        session.commit()
        assert (replayed.events, replayed.queued) == (1, 1)
        assert deliver_round(session, org_id).delivered == 1

    assert len(webhook.received) == 4
    assert not health_report(session, org_id).dead_webhooks
    actions = [entry.action for entry in iter_entries(session, org_id)]
    assert "events.replayed" in actions


def test_a_replay_reaches_a_webhook_registered_after_the_event(
    session: Session, org_id: int, psa: Receiver
) -> None:
    emit(session, org_id, "user.deactivated", "user-1", {})
    session.commit()
    hook(session, org_id, psa.url)

    replay_events(session, org_id, 1, 1, actor="cli:it")
    session.commit()

    assert deliver_round(session, org_id).delivered == 1
    with pytest.raises(ValueError, match="must not be after"):
        replay_events(session, org_id, 5, 1, actor="cli:it")


def test_during_a_rotation_both_secrets_sign(session: Session, org_id: int, psa: Receiver) -> None:
    endpoint_id, old = hook(session, org_id, psa.url)
    new = rotate_secret(session, org_id, endpoint_id, actor="cli:it", grace=timedelta(hours=1))
    emit(session, org_id, "user.deactivated", "user-1", {})
    session.commit()

    deliver_round(session, org_id)
    received = psa.received[-1]
    header = received.headers[SIGNATURE_HEADER]

    assert header.count("v1=") == 2
    for secret in (old, new):
        assert verify(secret, header, received.body, now=int(time.time()))
    assert list_webhooks(session, org_id)[0].rotation_ends_at is not None

    # Once the grace period is over, only the new secret signs.
    emit(session, org_id, "user.deactivated", "user-2", {})
    session.commit()
    deliver_round(session, org_id, later=timedelta(hours=2))
    later = psa.received[-1]
    assert later.headers[SIGNATURE_HEADER].count("v1=") == 1
    assert not verify(old, later.headers[SIGNATURE_HEADER], later.body, now=int(time.time()))


def test_webhook_changes_are_audited_without_their_secrets(
    session: Session, org_id: int, psa: Receiver
) -> None:
    endpoint_id, secret = hook(session, org_id, psa.url)
    new = rotate_secret(session, org_id, endpoint_id, actor="cli:it")
    remove_webhook(session, org_id, endpoint_id, actor="cli:it")

    entries = [entry for entry in iter_entries(session, org_id) if entry.target == endpoint_id]
    assert [entry.action for entry in entries] == [
        "webhook.added",
        "webhook.secret_rotated",
        "webhook.removed",
    ]
    assert all(entry.actor == "cli:it" for entry in entries)
    trail = json.dumps([entry.to_json() for entry in entries])
    assert secret not in trail
    assert new not in trail
    assert list_webhooks(session, org_id) == []


# -- sequence per organization ----------------------------------------------------


def test_each_organization_counts_its_own_events(session: Session, org_id: int) -> None:
    other = Organization(name=f"other-{org_id}")
    session.add(other)
    session.flush()
    for n in range(3):
        emit(session, org_id, "test.mine", f"u{n}", {})
        emit(session, other.id, "test.theirs", f"u{n}", {})
    emit(session, org_id, "test.mine", "u3", {})

    mine = events_after(session, org_id, 0)
    theirs = events_after(session, other.id, 0)

    assert [event.sequence for event in mine] == [1, 2, 3, 4]
    assert [event.sequence for event in theirs] == [1, 2, 3]
    assert [event.subject for event in events_after(session, org_id, 2)] == ["u2", "u3"]


def test_a_changes_events_are_numbered_on_from_the_organizations_last(
    session: Session, org_id: int
) -> None:
    other = Organization(name=f"other-{org_id}")
    session.add(other)
    session.flush()
    emit(session, org_id, "test.first", "u0", {})
    for org, count in ((org_id, 3), (other.id, 2), (org_id, 2)):
        journal = Journal()
        for n in range(count):
            journal.announce("test.journal", f"u{n}", {"n": n})
        journal.write(session, org)

    assert [event.sequence for event in events_after(session, org_id, 0)] == [1, 2, 3, 4, 5, 6]
    assert [event.sequence for event in events_after(session, other.id, 0)] == [1, 2]


def test_a_bulks_events_are_numbered_in_operation_order_and_a_failed_one_announces_none(
    idp: Idp, hub: Hub
) -> None:
    ada, grace = idp.user("ada@msp.example"), idp.user("grace@msp.example")
    before = len(hub.events())
    deactivate = {"op": "replace", "path": "active", "value": False}
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "PATCH", "path": f"/Users/{ada}", "data": patch_body(deactivate)},
            {"method": "PATCH", "path": "/Users/nobody", "data": patch_body(deactivate)},
            {"method": "PATCH", "path": f"/Users/{grace}", "data": patch_body(deactivate)},
        ],
    }

    answer = idp.expect(idp.scim.post("/Bulk", json=body), 200)

    assert [op["status"] for op in answer["Operations"]] == ["200", "404", "200"]
    events = hub.events()[before:]
    assert [(e.type, e.subject) for e in events if e.type == "user.deactivated"] == [
        ("user.deactivated", ada),
        ("user.deactivated", grace),
    ]
    assert [e.sequence for e in events] == list(range(before + 1, before + 1 + len(events)))


def patch_body(*operations: dict[str, object]) -> dict[str, object]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}
