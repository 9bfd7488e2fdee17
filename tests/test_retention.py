"""How long the trail keeps what it keeps (docs/personal-data.md#retention).

Old audit entries, delivered events and provisioning-log rows are pruned in
small batches, each its own short transaction, per organization and its own
periods; an event still waiting for a delivery is never pruned; SCIM writes
go on while a prune runs.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from click.testing import Result
from sqlalchemy import Engine, Table, func, insert, select, update

from connector.admin.retention import set_retention
from connector.db.base import utcnow
from connector.db.engine import make_session_factory
from connector.errors import ANSWERS, InvalidInput
from connector.settings import SettingsError, load_settings
from connector.trail.audit import AUDIT_LOG
from connector.trail.events import (
    EVENT_DELIVERIES,
    EVENTS,
    Announcement,
    EventEndpoint,
    write_events,
)
from connector.trail.request_log import SCIM_REQUEST_LOG, LoggedRequest, append
from connector.trail.retention import (
    AUDIT,
    EVENTS_KIND,
    REQUEST_LOG,
    RetentionPeriods,
    prune,
    retention_defaults,
)
from tests.fixtures_app import new_organization
from tests.scenarios import Hub, Idp

DEFAULTS = RetentionPeriods()  # 400 days of audit, 30 of events and of the provisioning log
OLD = timedelta(days=500)
YOUNG = timedelta(days=10)


def _audit(engine: Engine, org_id: int, age: timedelta, count: int) -> list[int]:
    at = utcnow() - age
    with engine.begin() as connection:
        connection.execute(
            insert(AUDIT_LOG),
            [
                {
                    "org_id": org_id,
                    "at": at,
                    "actor": "scim:x",
                    "action": "user.created",
                    "target": f"user:{n}",
                    "reason": "POST /scim/v2/Users",
                }
                for n in range(count)
            ],
        )
        return list(
            connection.scalars(
                select(AUDIT_LOG.c.id).where(AUDIT_LOG.c.org_id == org_id, AUDIT_LOG.c.at == at)
            )
        )


def _requests(engine: Engine, org_id: int, age: timedelta, count: int) -> None:
    with engine.begin() as connection:
        append(
            connection,
            [
                LoggedRequest(org_id, utcnow() - age, None, "GET", "/scim/v2/Users", 200, 1.0)
                for _ in range(count)
            ],
        )


def _endpoint(engine: Engine, org_id: int) -> str:
    endpoint_id = str(uuid.uuid4())
    with make_session_factory(engine)() as session:
        session.add(
            EventEndpoint(id=endpoint_id, org_id=org_id, url="http://127.0.0.1:9/", secret="s")
        )
        session.commit()
    return endpoint_id


def _event(
    engine: Engine,
    org_id: int,
    age: timedelta,
    *,
    delivered: timedelta | None = None,
    dead: bool = False,
    deliveries: bool = True,
) -> int:
    """One event ``age`` old: delivered ``delivered`` ago, dead-lettered, or still pending."""
    with make_session_factory(engine)() as session:
        write_events(session, org_id, [Announcement("access.changed", "u", {"user_id": "u"})])
        event_id = session.scalar(select(func.max(EVENTS.c.id)).where(EVENTS.c.org_id == org_id))
        assert event_id is not None
        session.execute(
            update(EVENTS).where(EVENTS.c.id == event_id).values(created_at=utcnow() - age)
        )
        rows = EVENT_DELIVERIES.c.event_id == event_id
        if not deliveries:
            session.execute(EVENT_DELIVERIES.delete().where(rows))
        elif delivered is not None:
            session.execute(
                update(EVENT_DELIVERIES).where(rows).values(delivered_at=utcnow() - delivered)
            )
        elif dead:
            session.execute(update(EVENT_DELIVERIES).where(rows).values(dead_at=utcnow()))
        session.commit()
        return event_id


def _ids(engine: Engine, table: Table, org_id: int) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                select(table.c.id).where(table.c.org_id == org_id).order_by(table.c.id)
            )
        )


def test_pruning_removes_only_what_is_past_the_retention(
    engine: Engine, org_id: int, hub: Hub
) -> None:
    old_audit = _audit(engine, org_id, OLD, 12)
    young_audit = _audit(engine, org_id, YOUNG, 3)
    _endpoint(engine, org_id)
    long_delivered = _event(engine, org_id, OLD, delivered=timedelta(days=40))
    lately_delivered = _event(engine, org_id, OLD, delivered=timedelta(days=5))
    pending = _event(engine, org_id, OLD)
    dead = _event(engine, org_id, OLD, dead=True)
    behind_pending = _event(engine, org_id, OLD, delivered=timedelta(days=31))
    never_sent = _event(engine, org_id, OLD, deliveries=False)
    young = _event(engine, org_id, YOUNG, delivered=timedelta(days=9))
    _requests(engine, org_id, timedelta(days=31), 7)
    _requests(engine, org_id, timedelta(days=29), 2)
    other_org = new_organization(engine)
    _audit(engine, other_org, OLD, 2)

    report = prune(engine, DEFAULTS, org_ids=[org_id], batch=5)

    assert report.pruned == {org_id: {AUDIT: 12, EVENTS_KIND: 3, REQUEST_LOG: 7}}
    assert report.batches >= 3 + 2 + 2
    remaining_audit = _ids(engine, AUDIT_LOG, org_id)
    assert not set(old_audit) & set(remaining_audit)
    assert remaining_audit[:3] == young_audit
    assert _ids(engine, EVENTS, org_id) == [lately_delivered, pending, dead, young]
    assert not {long_delivered, behind_pending, never_sent} & set(_ids(engine, EVENTS, org_id))
    assert len(_ids(engine, SCIM_REQUEST_LOG, org_id)) == 2
    assert len(_ids(engine, AUDIT_LOG, other_org)) == 2
    (pruned,) = hub.audit("retention.pruned")
    assert (pruned.actor, pruned.after["audit_entries"]) == ("retention", 12)

    again = prune(engine, DEFAULTS, org_ids=[org_id], batch=5)
    assert again.pruned == {}


def test_an_organization_keeps_its_own_periods(engine: Engine, org_id: int, hub: Hub) -> None:
    hub.run(
        lambda s: set_retention(
            s, org_id, {AUDIT: 600, REQUEST_LOG: 3}, actor="cli:it", defaults=DEFAULTS
        )
    )
    kept = _audit(engine, org_id, OLD, 4)
    _requests(engine, org_id, timedelta(days=5), 2)
    other_org = new_organization(engine)
    _audit(engine, other_org, OLD, 4)

    report = prune(engine, DEFAULTS, org_ids=[org_id, other_org])

    assert report.pruned == {org_id: {REQUEST_LOG: 2}, other_org: {AUDIT: 4}}
    assert set(kept) <= set(_ids(engine, AUDIT_LOG, org_id))


def test_a_scim_write_goes_on_while_a_prune_runs(
    engine: Engine, org_id: int, idp: Idp, database_url: str
) -> None:
    _audit(engine, org_id, OLD, 400)
    _requests(engine, org_id, timedelta(days=31), 400)
    batches: list[float] = []
    # SQLite: the default pause between batches; PostgreSQL has none, so slow it
    # down enough for the writes to overlap it.
    pause = None if database_url.startswith("sqlite") else 0.03
    pruner = threading.Thread(
        target=lambda: batches.append(
            prune(engine, DEFAULTS, org_ids=[org_id], batch=20, pause_seconds=pause).batches
        )
    )

    pruner.start()
    latencies: list[float] = []
    while pruner.is_alive():
        started = time.perf_counter()
        idp.user(f"writer-{uuid.uuid4().hex[:8]}@msp.example")
        latencies.append(time.perf_counter() - started)
    pruner.join()

    # 20 of audit entries at least (the app's own log writer prunes the log too).
    assert batches[0] >= 20
    assert len(latencies) >= 10, "the writes must overlap the prune"
    assert max(latencies) < 1.0, max(latencies)
    with engine.connect() as connection:
        old = connection.scalar(
            select(func.count()).where(
                AUDIT_LOG.c.org_id == org_id, AUDIT_LOG.c.at < utcnow() - timedelta(days=400)
            )
        )
    assert old == 0


# -- the command line -------------------------------------------------------------------


def _show(hub_scim: Callable[..., Result], org_name: str) -> dict[str, object]:
    result = hub_scim("retention", "show", "--org", org_name, "--json")
    assert result.exit_code == 0, result.output
    shown: dict[str, object] = json.loads(result.output)
    return shown


def test_it_sets_the_retention_and_the_change_is_audited(
    hub_scim: Callable[..., Result], org_name: str, hub: Hub
) -> None:
    assert _show(hub_scim, org_name)["audit"] == {"days": 400, "set": False}

    result = hub_scim(
        "retention", "set", "--org", org_name, "--audit-days", "730", "--events-days", "7"
    )

    assert result.exit_code == 0, result.output
    assert "730 days  (set for the organization)" in result.output
    shown = _show(hub_scim, org_name)
    assert shown["audit"] == {"days": 730, "set": True}
    assert shown["events"] == {"days": 7, "set": True}
    assert shown["request_log"] == {"days": 30, "set": False}
    (changed,) = hub.audit("retention.changed")
    assert changed.actor.startswith("cli")
    assert changed.before["audit"] == {"days": 400, "set": False}
    assert changed.after["audit"] == {"days": 730, "set": True}

    reset = hub_scim("retention", "set", "--org", org_name, "--default", "audit")
    assert reset.exit_code == 0, reset.output
    assert _show(hub_scim, org_name)["audit"] == {"days": 400, "set": False}
    assert len(hub.audit("retention.changed")) == 2
    # The same again changes nothing and is not audited.
    assert hub_scim("retention", "set", "--org", org_name, "--events-days", "7").exit_code == 0
    assert len(hub.audit("retention.changed")) == 2


def test_a_retention_out_of_bounds_is_refused(
    hub_scim: Callable[..., Result], org_name: str, hub: Hub, engine: Engine, org_id: int
) -> None:
    too_short = hub_scim("retention", "set", "--org", org_name, "--audit-days", "30")
    nothing = hub_scim("retention", "set", "--org", org_name)

    assert too_short.exit_code == 2, too_short.output
    assert "30 is not in the range 90<=x<=36500" in too_short.output
    assert nothing.exit_code == 2
    with pytest.raises(InvalidInput, match="audit retention must be 90 to 36500 days"):
        hub.run(lambda s: set_retention(s, org_id, {AUDIT: 10}, actor="t", defaults=DEFAULTS))
    assert ANSWERS[InvalidInput].exit_code == 2
    assert not hub.audit("retention.changed")


def test_prune_from_the_command_line(
    hub_scim: Callable[..., Result], org_name: str, engine: Engine, org_id: int
) -> None:
    _audit(engine, org_id, OLD, 3)
    _requests(engine, org_id, timedelta(days=31), 2)

    result = hub_scim("prune", "--org", org_name, "--batch", "2")

    assert result.exit_code == 0, result.output
    assert "Pruned 3 audit entries, 0 events and 2 provisioning-log rows" in result.output


def test_the_webhook_deliverer_prunes_between_rounds(
    hub_scim: Callable[..., Result], engine: Engine, org_id: int
) -> None:
    _requests(engine, org_id, timedelta(days=31), 2)

    result = hub_scim("events", "deliver", "--rounds", "1", "--prune-interval", "60")

    assert result.exit_code == 0, result.output
    assert not _ids(engine, SCIM_REQUEST_LOG, org_id)


def test_the_default_periods_are_settings() -> None:
    assert retention_defaults(load_settings({})) == RetentionPeriods(400, 30, 30)
    assert retention_defaults(
        load_settings(
            {"HUB_SCIM_AUDIT_RETENTION_DAYS": "730", "HUB_SCIM_EVENT_RETENTION_DAYS": "7"}
        )
    ) == RetentionPeriods(730, 7, 30)
    with pytest.raises(SettingsError, match="HUB_SCIM_AUDIT_RETENTION_DAYS must be at least 90"):
        load_settings({"HUB_SCIM_AUDIT_RETENTION_DAYS": "30"})
