"""Derived access under concurrent IdP requests: the two-Owner cap, and no lost update.

Several server processes (each with its own engine and connection pool, as
gunicorn workers or app instances are) and several threads of one process
push users into "Hub Owners", deactivate and reactivate Owners, all at once,
against one database. No request may fail, no interleaving may seat a third
Owner at any moment of the audit trail, and the end state must satisfy the
cap's invariants: two seats, everyone else who qualifies queued once.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Protocol

import pytest
from flask import Flask
from sqlalchemy import Engine

from connector.provisioning.writes import ScimWrites
from connector.web.app import create_app, hub_scim
from tests.fixtures_app import ScimClient
from tests.scenarios import HUB_ADMINS, OWNERS_MAPPING, PATCH_SCHEMA, Hub, Idp, mapping

WORKERS = 4


class Waiter(Protocol):
    """A barrier: ``threading.Barrier`` or a multiprocessing manager's proxy of one."""

    def wait(self, timeout: float | None = None) -> int: ...


USERS_PER_WORKER = 4


def _add(group: str, user: str) -> dict[str, object]:
    return {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": user}]}],
    }


def _active(value: bool) -> dict[str, object]:
    return {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "active", "value": value}],
    }


def race(
    scim: ScimClient, group: str, users: list[str], start: Waiter
) -> list[tuple[str, int, str]]:
    """One IdP connection's burst: add each user to the Owners group, then make the first leave
    and come back. Answers every (request, status, body) that was not a success."""
    failures = []
    start.wait()
    requests = [(f"/Groups/{group}", _add(group, user), 204) for user in users]
    requests += [
        (f"/Users/{users[0]}", _active(False), 200),
        (f"/Groups/{group}", _add(group, users[-1]), 204),
        (f"/Users/{users[0]}", _active(True), 200),
    ]
    for path, body, expected in requests:
        response = scim.patch(path, json=body)
        if response.status_code != expected:
            failures.append((path, response.status_code, response.get_data(as_text=True)))
    return failures


def race_in_process(
    database_url: str, token: str, group: str, users: list[str], start: Waiter
) -> list[tuple[str, int, str]]:
    """A server process of its own: its own app, engine and pool."""
    app = create_app(database_url=database_url, rate_limit_per_minute=0)
    try:
        return race(ScimClient(app.test_client(), token), group, users, start)
    finally:
        hub_scim(app).close()


@pytest.fixture
def owners_race(scim: ScimClient, engine: Engine, org_id: int) -> tuple[Hub, str, list[list[str]]]:
    hub = Hub(engine, org_id)
    hub.apply(OWNERS_MAPPING)
    idp = Idp(scim)
    group = idp.group("Hub Owners")
    users = [
        [idp.user(f"u{w}-{i}@msp.example") for i in range(USERS_PER_WORKER)] for w in range(WORKERS)
    ]
    return hub, group, users


def check_cap(hub: Hub, users: list[list[str]]) -> None:
    everyone = {user for batch in users for user in batch}
    seats, held = hub.seats(), hub.held()
    assert len(seats) == 2
    assert len(set(held)) == len(held)
    assert set(seats) | set(held) == everyone
    assert not set(seats) & set(held)
    roles = {user: hub.access(user) for user in everyone}
    assert sorted(u for u, a in roles.items() if a["role"] == "owner") == sorted(seats)
    assert all(roles[user]["held"] for user in held)
    # Replay the audit trail: at no point were more than two Owners seated.
    seated: set[str] = set()
    for entry in hub.audit():
        if entry.action == "owner.seated":
            seated.add(entry.after["user_id"])
        elif entry.action == "owner.unseated":
            seated.discard(entry.after["user_id"])
        assert len(seated) <= 2
    assert seated == set(seats)


def test_server_processes_racing_to_seat_owners_never_seat_a_third(
    owners_race: tuple[Hub, str, list[list[str]]], database_url: str, scim_token: str
) -> None:
    hub, group, users = owners_race
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
        start = manager.Barrier(WORKERS, timeout=120)
        futures = [
            pool.submit(race_in_process, database_url, scim_token, group, batch, start)
            for batch in users
        ]
        failures = [failure for future in futures for failure in future.result(timeout=300)]

    assert failures == []
    check_cap(hub, users)


def test_threads_racing_to_seat_owners_never_fail_nor_lock(
    owners_race: tuple[Hub, str, list[list[str]]], app: Flask, scim_token: str
) -> None:
    hub, group, users = owners_race
    start = threading.Barrier(WORKERS, timeout=60)

    def connection(batch: list[str]) -> list[tuple[str, int, str]]:
        return race(ScimClient(app.test_client(), scim_token), group, batch, start)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        failures = [failure for result in pool.map(connection, users) for failure in result]

    assert failures == []
    check_cap(hub, users)


# -- no lost update: one user, two mapped groups, two writers at once -----------------------

UNION_MAPPING = """\
[[rules]]
name = "Service desk admins"
group = "Service Desk"
role = "admin"

[[rules]]
name = "PSA technicians"
group = "PSA Technicians"
product = "psa"
product_roles = ["technician"]
permissions = ["psa.tickets.read", "psa.tickets.create"]
"""

ROUNDS = 12


@pytest.fixture
def two_mapped_groups(scim: ScimClient, engine: Engine, org_id: int) -> tuple[Hub, str, str]:
    hub = Hub(engine, org_id)
    hub.apply(UNION_MAPPING)
    hub.product("psa", "active")
    idp = Idp(scim)
    return hub, idp.group("Service Desk"), idp.group("PSA Technicians")


def join_at_once(scim: ScimClient, group: str, users: list[str], start: Waiter) -> list[str]:
    """One IdP connection: for each round, wait for the other, then add that round's user."""
    failures = []
    for user in users:
        start.wait()
        response = scim.patch(f"/Groups/{group}", json=_add(group, user))
        if response.status_code != 204:
            failures.append(f"{user}: {response.status_code} {response.get_data(as_text=True)}")
    return failures


def join_in_process(
    database_url: str, token: str, group: str, users: list[str], start: Waiter
) -> list[str]:
    app = create_app(database_url=database_url, rate_limit_per_minute=0)
    try:
        return join_at_once(ScimClient(app.test_client(), token), group, users, start)
    finally:
        hub_scim(app).close()


def check_union(hub: Hub, users: list[str]) -> None:
    """Each user has the Admin role of one group and the PSA grant of the other."""
    for user in users:
        access = hub.access(user)
        assert access["role"] == "admin", (user, access)
        assert "psa" in access["products"], (user, access)
        assert hub.may(user, "psa.tickets.create"), user


def test_two_server_processes_adding_one_user_to_two_mapped_groups_lose_nothing(
    two_mapped_groups: tuple[Hub, str, str],
    scim: ScimClient,
    database_url: str,
    scim_token: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers share one process here: the threaded race covers it")
    hub, desk, psa = two_mapped_groups
    users = [Idp(scim).user(f"race{n}@msp.example") for n in range(ROUNDS)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        start = manager.Barrier(2, timeout=120)
        futures = [
            pool.submit(join_in_process, database_url, scim_token, group, users, start)
            for group in (desk, psa)
        ]
        failures = [failure for future in futures for failure in future.result(timeout=300)]

    assert failures == []
    check_union(hub, users)


def test_two_threads_adding_one_user_to_two_mapped_groups_lose_nothing(
    two_mapped_groups: tuple[Hub, str, str], scim: ScimClient, app: Flask, scim_token: str
) -> None:
    hub, desk, psa = two_mapped_groups
    users = [Idp(scim).user(f"race{n}@msp.example") for n in range(ROUNDS)]
    start = threading.Barrier(2, timeout=60)

    def connection(group: str) -> list[str]:
        return join_at_once(ScimClient(app.test_client(), scim_token), group, users, start)

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [failure for result in pool.map(connection, (desk, psa)) for failure in result]

    assert failures == []
    check_union(hub, users)


# -- a Bulk and a single write: the event counter is always the last lock -----------------

BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def _patch_operation(path: str, *operations: dict[str, object]) -> dict[str, object]:
    return {
        "method": "PATCH",
        "path": path,
        "data": {"schemas": [PATCH_SCHEMA], "Operations": list(operations)},
    }


def test_a_bulk_and_a_single_patch_crossing_users_both_succeed(
    scim: ScimClient,
    app: Flask,
    scim_token: str,
    engine: Engine,
    org_id: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Okta's import deactivates a leaver, then adds a joiner to a mapped group, while an
    Entra PATCH deactivates that joiner: the Bulk's first operation announced an event
    before the PATCH took the joiner's row, so a Bulk numbering its events as it went
    would wait for the joiner while the PATCH waited for the organization's counter."""
    hub = Hub(engine, org_id)
    hub.apply(mapping(HUB_ADMINS))
    idp = Idp(scim)
    leaver, joiner = idp.user("leaver@msp.example"), idp.user("joiner@msp.example")
    admins = idp.group("Hub Admins")
    first_operation_done, patch_done = threading.Event(), threading.Event()
    operations = 0
    savepoint = ScimWrites.savepoint

    def pausing_savepoint(self: ScimWrites) -> AbstractContextManager[None]:
        nonlocal operations
        operations += 1
        if operations == 2:
            # The first operation is written; the PATCH runs now, as far as it can.
            first_operation_done.set()
            patch_done.wait(timeout=2)
        return savepoint(self)

    monkeypatch.setattr(ScimWrites, "savepoint", pausing_savepoint)
    body = {
        "schemas": [BULK_SCHEMA],
        "Operations": [
            _patch_operation(
                f"/Users/{leaver}", {"op": "replace", "path": "active", "value": False}
            ),
            _patch_operation(
                f"/Groups/{admins}", {"op": "add", "path": "members", "value": [{"value": joiner}]}
            ),
        ],
    }

    def bulk() -> tuple[int, list[str]]:
        response = ScimClient(app.test_client(), scim_token).post("/Bulk", json=body)
        return response.status_code, [op["status"] for op in response.get_json()["Operations"]]

    def single_patch() -> int:
        first_operation_done.wait(timeout=30)
        try:
            response = ScimClient(app.test_client(), scim_token).patch(
                f"/Users/{joiner}", json=_active(False)
            )
            return response.status_code
        finally:
            patch_done.set()

    with ThreadPoolExecutor(max_workers=2) as pool:
        bulk_answer, patch_answer = pool.submit(bulk), pool.submit(single_patch)
        assert bulk_answer.result(timeout=60) == (200, ["200", "200"])
        assert patch_answer.result(timeout=60) == 200

    # Every event got its own number, in the order the two transactions committed.
    sequences = [event.sequence for event in hub.events()]
    assert sequences == list(range(1, len(sequences) + 1))
    assert {e.subject for e in hub.events("user.deactivated")} == {leaver, joiner}
