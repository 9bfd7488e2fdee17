"""Recomputing is proportional to the change, not to the group.

An Entra batch adding k members to a mapped group costs the same number of
SQL statements whether the group holds ten members or two thousand: the
access engine reads the k users, never the group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert

from connector.access.derive import DerivedAccess, UserFacts, derive_access
from connector.db.engine import make_session_factory
from connector.derived import recompute as engine_module
from connector.directory.store import SqlBackend
from connector.directory.tables import GroupMember
from scim.backend import ResourceKind
from tests.scenarios import PSA_CREATE, PSA_READ, USER_SCHEMA, Hub, Idp, Rule, mapping

SERVICE_DESK = mapping(
    Rule(group="Service Desk", role="admin"),
    Rule(group="Service Desk", product="psa", permissions=(PSA_READ, PSA_CREATE)),
)
BATCH = 10


@contextmanager
def counted_statements(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        # The statistics keeper's own check may fall in a measured request:
        # it is the app's housekeeping, not the request's work.
        if "pg_stat_user_tables" not in args[2] and not args[2].startswith("ANALYZE"):
            statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def seed_users(engine: Engine, org_id: int, count: int) -> list[str]:
    """Users stored without the SCIM layer: setup only, the directory as an old import left it."""
    with make_session_factory(engine)() as session:
        backend = SqlBackend(session, org_id)
        ids = [
            backend.create(ResourceKind.USER, {"schemas": [USER_SCHEMA], "userName": f"seed{n}"}).id
            for n in range(count)
        ]
        session.commit()
    return ids


def grow(engine: Engine, org_id: int, group: str, users: list[str]) -> None:
    with make_session_factory(engine)() as session:
        session.execute(
            insert(GroupMember),
            [{"group_id": group, "user_id": user, "org_id": org_id} for user in users],
        )
        session.commit()


@pytest.mark.parametrize("size", [2000])
def test_an_entra_batch_costs_the_same_in_a_small_and_a_big_mapped_group(
    idp: Idp,
    hub: Hub,
    engine: Engine,
    org_id: int,
    size: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub.apply(SERVICE_DESK)
    hub.product("psa", "active")
    group = idp.group("Service Desk")
    pushed = [idp.user(f"tech{n}@msp.example") for n in range(2 * BATCH)]

    with counted_statements(engine) as small:
        idp.add(group, *pushed[:BATCH])
    grow(engine, org_id, group, seed_users(engine, org_id, size))
    derived: list[str] = []

    def counting_derive(facts: UserFacts, *args: Any) -> DerivedAccess:
        derived.append(facts.user_id)
        return derive_access(facts, *args)

    monkeypatch.setattr(engine_module, "derive_access", counting_derive)
    with counted_statements(engine) as big:
        idp.add(group, *pushed[BATCH:])

    assert len(big) == len(small)
    assert sorted(derived) == sorted(pushed[BATCH:])
    assert all(hub.role(user) == "admin" for user in pushed)
    assert hub.may(pushed[-1], "psa.tickets.create")


def test_a_batch_into_an_unmapped_group_recomputes_nobody(idp: Idp, hub: Hub) -> None:
    hub.apply(SERVICE_DESK)
    users = [idp.user(f"u{n}") for n in range(BATCH)]
    group = idp.group("Lunch Club")
    changes_before = len(hub.audit("access.changed"))

    idp.add(group, *users)

    assert len(hub.audit("access.changed")) == changes_before
    assert hub.audit("group.members_changed")[-1].after["added"] == sorted(users)
