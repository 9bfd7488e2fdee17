"""What one SCIM write's transaction reads once and appends together.

The organization's rules are read once per transaction and forgotten by
every writer of the mapping, a binding or a product state, even within the
same transaction; a savepoint that rolls back takes what was read inside it
along. A user create or delete costs the access engine a fixed handful of
statements, the audit entries and events of a change are appended in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from connector.access.derive import ManualGrant
from connector.access.mapping import ProductGrant, parse_mapping
from connector.admin.grants import set_product_state
from connector.admin.mappings import apply_mapping
from connector.derived.facts import (
    OrgRules,
    load_rules,
    load_seats,
    load_snapshots,
    load_users,
    load_users_and_snapshots,
    user_from_document,
    with_bindings,
)
from connector.derived.memo import forget, recall, remember
from connector.derived.tables import AccessSnapshot
from connector.derived.tables import ManualGrant as ManualGrantRow
from connector.directory.store import SqlBackend
from connector.provisioning.writes import ScimWrites
from connector.tenancy.tables import Organization
from connector.trail import audit
from connector.trail.audit import AuditEntry, iter_entries
from connector.trail.cause import Cause
from connector.trail.events import Announcement, Event, EventDelivery, EventEndpoint, write_events
from connector.trail.journal import Journal
from scim.backend import MemberChanges, ResourceKind
from tests.fixtures_app import ScimClient
from tests.scenarios import GROUP_SCHEMA, USER_SCHEMA, Idp

SERVICE_DESK = """\
[[rules]]
group = "Service Desk"
role = "admin"
"""

ENGINE_TABLES = (
    "mapping_documents",
    "group_bindings",
    "product_states",
    "manual_grants",
    "owner_seats",
    "owner_holds",
    "access_snapshots",
    "audit_log",
    "event_endpoints",
    "events",
    "event_deliveries",
)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(" ".join(str(args[2]).split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def of_the_engine(seen: list[str]) -> list[str]:
    """The statements that touch a table of the access engine, audit or events."""
    return [
        statement
        for statement in seen
        if any(f" {table} " in f" {statement} " for table in ENGINE_TABLES)
    ]


def hub_backend(session: Session, org_id: int) -> ScimWrites:
    return ScimWrites(session, org_id, Cause("scim:test", "a SCIM request"))


def user(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def group(display_name: str) -> dict[str, Any]:
    return {"schemas": [GROUP_SCHEMA], "displayName": display_name}


def joining(*user_ids: str) -> MemberChanges:
    return MemberChanges(add=frozenset(user_ids))


def role(session: Session, org_id: int, user_id: str) -> str | None:
    found = load_snapshots(session, org_id, [user_id])[user_id].role
    return None if found is None else found.value


# -- the memo ----------------------------------------------------------------------------


def test_a_remembered_value_lasts_until_the_transaction_ends(session: Session) -> None:
    session.execute(select(1))
    remember(session, "key", "value")
    assert recall(session, "key") == "value"
    session.commit()
    assert recall(session, "key") is None

    session.execute(select(1))
    remember(session, "key", "value")
    session.rollback()
    assert recall(session, "key") is None


def test_a_savepoint_sees_the_enclosing_value_and_takes_its_own_along(session: Session) -> None:
    session.execute(select(1))
    remember(session, "outer", 1)
    with session.begin_nested() as savepoint:
        assert recall(session, "outer") == 1
        remember(session, "inner", 2)
        assert recall(session, "inner") == 2
        savepoint.rollback()
    assert recall(session, "inner") is None
    with session.begin_nested():
        remember(session, "inner", 3)
    # Released: its value was read among rows a later rollback could still undo.
    assert recall(session, "inner") is None
    assert recall(session, "outer") == 1
    forget(session, "outer")
    assert recall(session, "outer") is None


# -- the rules, read once ------------------------------------------------------------------


def test_the_rules_are_read_once_per_transaction(
    session: Session, engine: Engine, org_id: int
) -> None:
    with statements(engine) as seen:
        first = load_rules(session, org_id)
        second = load_rules(session, org_id)
        session.commit()
        load_rules(session, org_id)
    assert first is second
    assert sum("mapping_documents" in statement for statement in seen) == 2


def test_a_mapping_applied_in_the_same_transaction_is_what_the_next_write_derives_with(
    session: Session, org_id: int
) -> None:
    backend = hub_backend(session, org_id)
    before = backend.create(ResourceKind.USER, user("ada@msp.example")).id
    assert role(session, org_id, before) == "member"

    apply_mapping(session, org_id, 'default_role = "viewer"\n', actor="cli:it", dry_run=False)
    after = backend.create(ResourceKind.USER, user("grace@msp.example")).id

    assert role(session, org_id, after) == "viewer"
    assert load_rules(session, org_id).source == 'default_role = "viewer"\n'


def test_a_product_enabled_in_the_same_transaction_counts_at_once(
    session: Session, org_id: int
) -> None:
    mapping = SERVICE_DESK + '\n[[rules]]\ngroup = "Service Desk"\nproduct = "psa"\n'
    apply_mapping(session, org_id, mapping, actor="cli:it", dry_run=False)
    backend = hub_backend(session, org_id)
    ada = backend.create(ResourceKind.USER, user("ada@msp.example")).id
    desk = backend.create(ResourceKind.GROUP, group("Service Desk")).id
    assert "psa" not in load_rules(session, org_id).context.product_states

    set_product_state(session, org_id, "psa", "active", actor="cli:it")
    backend.replace(ResourceKind.GROUP, desk, group("Service Desk"), joining(ada))

    products = load_snapshots(session, org_id, [ada])[ada].products
    assert "psa" in products


def test_a_group_pushed_in_the_same_transaction_binds_before_its_members_count(
    session: Session, org_id: int
) -> None:
    apply_mapping(session, org_id, SERVICE_DESK, actor="cli:it", dry_run=False)
    session.commit()
    backend = hub_backend(session, org_id)
    ada = backend.create(ResourceKind.USER, user("ada@msp.example")).id
    assert load_rules(session, org_id).bound_group_ids == frozenset()

    desk = backend.create(ResourceKind.GROUP, group("Service Desk"), joining(ada)).id

    assert load_rules(session, org_id).bound_group_ids == {desk}
    assert role(session, org_id, ada) == "admin"


def test_a_group_deleted_and_pushed_again_in_one_transaction_binds_the_new_group(
    session: Session, org_id: int
) -> None:
    apply_mapping(session, org_id, SERVICE_DESK, actor="cli:it", dry_run=False)
    backend = hub_backend(session, org_id)
    ada = backend.create(ResourceKind.USER, user("ada@msp.example")).id
    old = backend.create(ResourceKind.GROUP, group("Service Desk"), joining(ada)).id
    session.commit()
    assert role(session, org_id, ada) == "admin"
    assert load_rules(session, org_id).bound_group_ids == {old}

    backend.delete(ResourceKind.GROUP, old)
    assert role(session, org_id, ada) == "member"
    new = backend.create(ResourceKind.GROUP, group("Service Desk"), joining(ada)).id

    assert load_rules(session, org_id).bound_group_ids == {new}
    assert role(session, org_id, ada) == "admin"


def test_a_binding_rolled_back_with_its_savepoint_is_not_remembered(
    session: Session, org_id: int
) -> None:
    apply_mapping(session, org_id, SERVICE_DESK, actor="cli:it", dry_run=False)
    session.commit()
    backend = hub_backend(session, org_id)
    load_rules(session, org_id)
    with session.begin_nested() as savepoint:
        backend.create(ResourceKind.GROUP, group("Service Desk"))
        assert load_rules(session, org_id).bound_group_ids
        savepoint.rollback()

    assert load_rules(session, org_id).bound_group_ids == frozenset()


# -- what a write costs ----------------------------------------------------------------------


def test_a_user_create_and_delete_cost_the_engine_a_handful_of_statements(
    scim: ScimClient, engine: Engine, org_id: int
) -> None:
    idp = Idp(scim)
    idp.user("warm-up@msp.example")

    with statements(engine) as created:
        ada = idp.user("ada@msp.example")
    with statements(engine) as deleted:
        idp.delete_user(ada)

    # A create reads the rules (a new user who cannot be an Owner moves no
    # seat); a delete reads the rules and drops the snapshot, and leaves the
    # seats alone: the user had none. Then what the change writes: snapshots,
    # audit entries, events and their deliveries, in one statement per kind
    # on SQLite, one in all on PostgreSQL.
    expected = {"sqlite": (1 + 4, 2 + 3), "postgresql": (1 + 1, 2 + 1)}[engine.dialect.name]
    assert len(of_the_engine(created)) == expected[0], of_the_engine(created)
    assert len(of_the_engine(deleted)) == expected[1], of_the_engine(deleted)
    assert sum("mapping_documents" in statement for statement in created) == 1


def test_a_created_user_is_derived_as_if_read_back(session: Session, org_id: int) -> None:
    rules = OrgRules(
        with_bindings(parse_mapping("map_scim_roles = true\n"), {}, {}), "map_scim_roles = true"
    )
    stored = SqlBackend(session, org_id).create(
        ResourceKind.USER,
        user("Ada@MSP.example", active=False, roles=[{"value": "HubAdmin"}, {"value": " "}]),
    )

    read = load_users(session, org_id, [stored.id], rules)[stored.id]
    assert user_from_document(stored.id, stored.document, rules) == read
    assert read.facts.scim_roles == {"HubAdmin"}


@pytest.mark.parametrize("mapping", ["", "map_scim_roles = true\n"], ids=["facts", "document"])
def test_users_are_read_with_their_manual_grants_in_one_query(
    session: Session, org_id: int, engine: Engine, mapping: str
) -> None:
    rules = OrgRules(with_bindings(parse_mapping(mapping), {}, {}), mapping or None)
    backend = SqlBackend(session, org_id)
    granted = backend.create(ResourceKind.USER, user("ada@msp.example", roles=[{"value": "x"}]))
    plain = backend.create(ResourceKind.USER, user("bob@msp.example"))
    for product, roles in (("vault", ["reader"]), ("portal", ["admin", "viewer"])):
        session.add(
            ManualGrantRow(
                org_id=org_id,
                user_id=granted.id,
                product=product,
                product_roles=roles,
                permissions=[f"{product}.use"],
                granted_by="it@msp.example",
            )
        )
    session.flush()

    with statements(engine) as seen:
        read = load_users(session, org_id, [plain.id, granted.id, "no-such-user"], rules)

    assert len(seen) == 1
    assert read.keys() == {granted.id, plain.id}
    assert read[granted.id].facts.manual_grants == (
        ManualGrant(
            ProductGrant("portal", frozenset({"admin", "viewer"}), frozenset({"portal.use"})),
            "it@msp.example",
        ),
        ManualGrant(
            ProductGrant("vault", frozenset({"reader"}), frozenset({"vault.use"})), "it@msp.example"
        ),
    )
    assert read[plain.id].facts.manual_grants == ()
    assert read[granted.id].facts.scim_roles == ({"x"} if mapping else set())
    assert read[granted.id].user_name == "ada@msp.example"


def test_users_are_read_with_their_snapshots_in_one_query(
    session: Session, org_id: int, engine: Engine
) -> None:
    derived = hub_backend(session, org_id).create(ResourceKind.USER, user("ada@msp.example"))
    underived = SqlBackend(session, org_id).create(ResourceKind.USER, user("bob@msp.example"))
    rules = load_rules(session, org_id)
    both = [derived.id, underived.id, "no-such-user"]

    with statements(engine) as seen:
        users, snapshots = load_users_and_snapshots(session, org_id, both, rules)

    assert len(seen) == 1
    assert users == load_users(session, org_id, both, rules)
    assert snapshots.keys() == {derived.id}
    assert snapshots == load_snapshots(session, org_id, both)


def test_new_users_who_would_be_owners_still_meet_the_two_owner_cap(
    session: Session, org_id: int
) -> None:
    mapping = 'map_scim_roles = true\n\n[[rules]]\nscim_role = "Hub.Owner"\nrole = "owner"\n'
    apply_mapping(session, org_id, mapping, actor="cli:it", dry_run=False)
    backend = hub_backend(session, org_id)
    ada, bob, cy = (
        backend.create(
            ResourceKind.USER, user(f"{name}@msp.example", roles=[{"value": "Hub.Owner"}])
        ).id
        for name in ("ada", "bob", "cy")
    )

    seats = load_seats(session, org_id).seats
    assert (seats.owner_ids, seats.held_ids) == ((ada, bob), (cy,))
    assert role(session, org_id, cy) == "admin"


# -- appending ---------------------------------------------------------------------------------


def test_audit_entries_are_appended_in_order(session: Session, org_id: int) -> None:
    entries = [audit.Entry("cli:it", f"test.step{n}", "org", None, {"n": n}) for n in range(3)]
    audit.record_all(session, org_id, entries)
    audit.record_all(session, org_id, [])

    found = [entry for entry in iter_entries(session, org_id) if entry.action.startswith("test.")]
    assert [entry.action for entry in found] == ["test.step0", "test.step1", "test.step2"]
    assert [entry.after for entry in found] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert found[0].before is None


def add_endpoint(session: Session, org_id: int, url: str) -> tuple[str, str]:
    """A registered webhook, written as is (registration's address checks are tested apart)."""
    endpoint = EventEndpoint(id=str(uuid.uuid4()), org_id=org_id, url=url, secret="s3cret")
    session.add(endpoint)
    session.flush()
    return endpoint.id, endpoint.secret


def test_a_journal_writes_a_changes_snapshots_entries_and_events_in_their_order(
    session: Session, org_id: int, engine: Engine
) -> None:
    endpoint, _ = add_endpoint(session, org_id, "https://psa.example/hooks")
    cause = Cause("scim:1", "PATCH /Groups/1")
    first = Journal()
    first.snapshot("user-old", {"role": "member"}, new=True)
    first.write(session, org_id)
    journal = Journal()
    journal.snapshot("user-old", {"role": "admin"}, new=False)
    journal.snapshot("user-new", {"role": "viewer"}, new=True)
    for n in range(30):
        journal.audit(cause, f"test.step{n:02}", "org", None if n % 2 else {"n": n}, {"n": n})
        journal.announce(f"test.event{n:02}", "org", {"n": n})

    with statements(engine) as seen:
        journal.write(session, org_id)
        journal.write(session, org_id)  # empty again: writes nothing

    assert len(seen) == (1 if engine.dialect.name == "postgresql" else 6)
    snapshots: dict[str, Any] = dict(
        session.execute(
            select(AccessSnapshot.user_id, AccessSnapshot.access).where(
                AccessSnapshot.org_id == org_id
            )
        ).all()
    )
    assert snapshots == {"user-old": {"role": "admin"}, "user-new": {"role": "viewer"}}
    entries = [entry for entry in iter_entries(session, org_id) if entry.action.startswith("test.")]
    assert [entry.action for entry in entries] == [f"test.step{n:02}" for n in range(30)]
    assert [entry.before for entry in entries[:2]] == [{"n": 0}, None]
    assert all(entry.reason == cause.reason and entry.actor == cause.actor for entry in entries)
    # No SQL NULL: a null "before" is stored as JSON null whichever path wrote it.
    assert not session.scalar(
        select(func.count()).where(AuditEntry.org_id == org_id, AuditEntry.before.is_(None))
    )
    events = session.execute(
        select(Event.id, Event.type, Event.payload)
        .where(Event.org_id == org_id, Event.type.startswith("test."))
        .order_by(Event.id)
    ).all()
    assert [(kind, payload) for _, kind, payload in events] == [
        (f"test.event{n:02}", {"n": n}) for n in range(30)
    ]
    delivered = session.scalar(
        select(func.count()).where(
            EventDelivery.endpoint_id == endpoint,
            EventDelivery.event_id.in_([event_id for event_id, _, _ in events]),
        )
    )
    assert delivered == 30


def test_events_get_one_delivery_per_endpoint_registered_even_in_the_same_transaction(
    session: Session, org_id: int, engine: Engine
) -> None:
    other = Organization(name=f"other-{org_id}")
    session.add(other)
    session.flush()
    elsewhere, _ = add_endpoint(session, other.id, "https://elsewhere.example/hooks")
    write_events(session, org_id, [Announcement("test.none", "x", {})])
    first, _ = add_endpoint(session, org_id, "https://psa.example/hooks")
    second, _ = add_endpoint(session, org_id, "https://crm.example/hooks")

    with statements(engine) as seen:
        write_events(
            session, org_id, [Announcement("test.one", "a", {}), Announcement("test.two", "b", {})]
        )

    assert len(seen) == 3  # the organization's counter, the events, their deliveries
    deliveries = session.execute(
        select(EventDelivery.endpoint_id, func.count())
        .where(EventDelivery.endpoint_id.in_([elsewhere, first, second]))
        .group_by(EventDelivery.endpoint_id)
    ).all()
    assert dict(deliveries) == {first: 2, second: 2}


@pytest.mark.parametrize("endpoints", [0, 1])
def test_a_leavers_events_and_audit_entries_keep_their_order(
    session: Session, org_id: int, endpoints: int
) -> None:
    if endpoints:
        add_endpoint(session, org_id, "https://psa.example/hooks")
    backend = hub_backend(session, org_id)
    ada = backend.create(ResourceKind.USER, user("ada@msp.example")).id

    backend.delete(ResourceKind.USER, ada)

    actions = [entry.action for entry in iter_entries(session, org_id)]
    assert actions == ["user.created", "access.changed", "user.deleted", "access.changed"]
    events = session.execute(
        select(Event.id, Event.type).where(Event.org_id == org_id).order_by(Event.id)
    ).all()
    assert [kind for _, kind in events] == ["access.changed", "access.changed", "user.deleted"]
    deliveries = session.scalar(
        select(func.count())
        .select_from(EventDelivery)
        .where(EventDelivery.event_id.in_([event_id for event_id, _ in events]))
    )
    assert deliveries == endpoints * len(events)
