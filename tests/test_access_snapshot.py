"""A product loads every user's access, page by page, while the IdP writes, then catches up.

``GET /api/v1/access`` serves the organization's users in id order, each page
stamped with the event position it is consistent at; docs/reconciliation.md
states the protocol and its guarantee, and ``docs/reconcile_client.py`` is
the client it describes. These tests drive that very client against the app:
a snapshot plus the events after it must equal a fresh snapshot, with every
later change applied once.
"""

from __future__ import annotations

import base64
import importlib.util
import random
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, delete, text
from werkzeug.serving import make_server

from connector.db.engine import make_session_factory, read_consistently
from connector.tenancy.credentials import Scope
from connector.tenancy.tables import Organization
from connector.trail.events import Event
from tests.fixtures_app import ScimClient, issue_token
from tests.scenarios import OWNERS_MAPPING, AccessApi, Hub, Idp


def _load_client() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "docs" / "reconcile_client.py"
    spec = importlib.util.spec_from_file_location("reconcile_client", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


reconcile = _load_client()

MAPPED_GROUPS = ("Hub Owners", "PSA Technicians", "Auditors")
ROUNDS = 10
PAGE_SIZE = 3


@pytest.fixture
def configured(hub: Hub) -> Hub:
    """IT mapped Owners, PSA technicians and auditors, and PSA is subscribed."""
    hub.apply(OWNERS_MAPPING)
    hub.product("psa", "active")
    return hub


def page_of(product: AccessApi, **query: Any) -> dict[str, Any]:
    response = product.snapshot(**query)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def without_access(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "access"}


# -- the snapshot ------------------------------------------------------------------


def test_every_user_is_listed_once_in_id_order_as_the_single_user_route_shows_them(
    idp: Idp, configured: Hub, product: AccessApi
) -> None:
    users = [idp.user(f"user{n}@msp.example") for n in range(5)]
    idp.group("PSA Technicians", users[:2])
    idp.group("Hub Owners", users[2:3])

    first = page_of(product, limit=2)
    second = page_of(product, limit=2, cursor=first["next_cursor"])
    third = page_of(product, limit=2, cursor=second["next_cursor"])

    rows = first["users"] + second["users"] + third["users"]
    assert [row["id"] for row in rows] == sorted(users)
    assert third["next_cursor"] is None
    for row in rows:
        assert without_access(row) == product.effective_access(row["id"])
    owner = next(row for row in rows if row["id"] == users[2])
    assert owner["access"]["role"] == "owner"
    technician = next(row for row in rows if row["id"] == users[0])
    assert technician["access"]["products"]["psa"] == {
        "roles": ["technician"],
        "permissions": ["psa.tickets.create", "psa.tickets.read"],
        "withheld": [],
    }


def test_a_quiet_organizations_pages_all_stand_at_its_last_event(
    idp: Idp, configured: Hub, product: AccessApi
) -> None:
    for n in range(3):
        idp.user(f"user{n}@msp.example")
    last = max(event.sequence for event in configured.events())

    first = page_of(product, limit=2)
    second = page_of(product, limit=2, cursor=first["next_cursor"])

    assert first["position"] == second["position"] == last


def test_an_organization_without_users_is_one_empty_page(product: AccessApi) -> None:
    assert page_of(product) == {"position": 0, "users": [], "next_cursor": None}


def test_a_full_last_page_says_there_is_no_more(idp: Idp, product: AccessApi) -> None:
    for n in range(2):
        idp.user(f"user{n}@msp.example")

    page = page_of(product, limit=2)

    assert len(page["users"]) == 2
    assert page["next_cursor"] is None


def test_a_leaver_is_listed_without_any_access(
    idp: Idp, configured: Hub, product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    idp.deactivate(ada)

    (row,) = page_of(product)["users"]

    assert row["active"] is False
    assert row["role"] is None
    assert row["products"] == {}
    assert row["access"] == {
        "active": False,
        "role": None,
        "held": False,
        "kept_as_last_owner": False,
        "products": {},
        "dormant": {},
    }


def test_a_deleted_user_is_absent_and_the_events_after_the_snapshot_delete_them(
    idp: Idp, configured: Hub, product: AccessApi
) -> None:
    ada, grace = idp.user("ada@msp.example"), idp.user("grace@msp.example")
    idp.group("PSA Technicians", [ada, grace])
    replica = reconcile.load(product.get)
    assert set(replica.users) == {ada, grace}

    idp.delete_user(ada)

    assert [row["id"] for row in page_of(product)["users"]] == [grace]
    events = product.get("/events", {"after": replica.position})["events"]
    assert [(event["type"], event["subject"]) for event in events][-1] == ("user.deleted", ada)
    assert reconcile.catch_up(product.get, replica) == len(events)
    assert replica.users == reconcile.load(product.get).users


def test_another_organizations_users_are_never_listed(
    idp: Idp, other_org_idp: Idp, product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    other_org_idp.user("theirs@other.example")

    assert [row["id"] for row in page_of(product)["users"]] == [ada]


# -- refusals ----------------------------------------------------------------------


def test_a_scim_credential_is_refused_with_insufficient_scope(
    client: FlaskClient, scim_token: str
) -> None:
    response = AccessApi(client, scim_token).snapshot()

    assert response.status_code == 403
    assert response.json is not None
    assert response.json["error"] == "insufficient_scope"


def test_without_a_credential_the_answer_is_401(client: FlaskClient) -> None:
    assert AccessApi(client, None).snapshot().status_code == 401


def _altered(cursor: str) -> str:
    body, check = cursor.split(".")
    data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).replace(b'"a":"', b'"a":"0')
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode() + "." + check


@pytest.mark.parametrize(
    "make_cursor",
    [
        lambda cursor: "garbage",
        lambda cursor: "!!!.???",
        lambda cursor: cursor[:-3],
        lambda cursor: cursor + "A",
        lambda cursor: _altered(cursor),
        lambda cursor: cursor.split(".")[0],
        lambda cursor: "x" * 5000,
        lambda cursor: "e30.e30",
    ],
    ids=["word", "not-base64", "cut", "lengthened", "edited", "no-check", "huge", "empty-json"],
)
def test_a_cursor_this_service_did_not_issue_is_400(
    idp: Idp, product: AccessApi, make_cursor: Callable[[str], str]
) -> None:
    for n in range(3):
        idp.user(f"user{n}@msp.example")
    cursor = page_of(product, limit=1)["next_cursor"]

    response = product.snapshot(limit=1, cursor=make_cursor(cursor))

    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_cursor"


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", "1e3", "99999999999999999999999"])
def test_a_bad_limit_is_400(product: AccessApi, limit: str) -> None:
    response = product.snapshot(limit=limit)

    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_request"


def test_a_cursor_of_another_organization_is_refused(
    idp: Idp,
    other_org_idp: Idp,
    product: AccessApi,
    client: FlaskClient,
    engine: Engine,
    other_org_id: int,
) -> None:
    for n in range(2):
        idp.user(f"user{n}@msp.example")
        other_org_idp.user(f"theirs{n}@other.example")
    theirs = AccessApi(client, issue_token(engine, other_org_id, Scope.ACCESS))
    their_cursor = page_of(theirs, limit=1)["next_cursor"]

    response = product.snapshot(limit=1, cursor=their_cursor)

    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "invalid_cursor"
    assert "another organization" in response.json["detail"]


# -- under concurrent IdP writes ------------------------------------------------------


class IdpWriter:
    """Okta-shaped provisioning in a thread of its own: joiners, mapped-group moves, leavers.

    Every write changes someone's access (a create, a mapped membership, a
    deactivation or reactivation, a delete), so the event log moves with it.
    ``wait_for_write`` lets the reader ask for at least one more write before
    its next page, so that every snapshot is read across many positions.
    """

    def __init__(self, idp: Idp, groups: dict[str, str], seed: int) -> None:
        self.idp = idp
        self.groups = groups
        self.random = random.Random(seed)
        self.users: list[str] = []
        self.inactive: set[str] = set()
        self.members: dict[str, set[str]] = {group: set() for group in groups.values()}
        self.created = 0
        self.writes = 0
        self.errors: list[BaseException] = []
        self.changed = threading.Condition()
        self.stop = threading.Event()

    def step(self) -> None:
        draw = self.random.random()
        if not self.users or (draw < 0.3 and len(self.users) < 40):
            self.created += 1
            self.users.append(self.idp.user(f"joiner{self.created}@msp.example"))
        elif draw < 0.65:
            group = self.random.choice(list(self.members))
            candidates = [user for user in self.users if user not in self.members[group]]
            if candidates:
                user = self.random.choice(candidates)
                self.idp.add(group, user)
                self.members[group].add(user)
        elif draw < 0.8:
            group = self.random.choice(list(self.members))
            if self.members[group]:
                user = self.random.choice(sorted(self.members[group]))
                self.idp.remove(group, user)
                self.members[group].discard(user)
        elif draw < 0.92:
            user = self.random.choice(self.users)
            if user in self.inactive:
                self.idp.reactivate(user)
                self.inactive.discard(user)
            else:
                self.idp.deactivate(user)
                self.inactive.add(user)
        else:
            user = self.random.choice(self.users)
            self.idp.delete_user(user)
            self.users.remove(user)
            self.inactive.discard(user)
            for members in self.members.values():
                members.discard(user)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
                with self.changed:
                    self.writes += 1
                    self.changed.notify_all()
        except BaseException as error:  # the reader must not wait for a dead writer
            self.errors.append(error)
            with self.changed:
                self.writes = -1
                self.changed.notify_all()

    def wait_for_write(self, after: int) -> int:
        with self.changed:
            self.changed.wait_for(lambda: self.writes > after or self.writes < 0, timeout=30)
            assert self.writes > after, f"the IdP writer stopped: {self.errors}"
            return self.writes


def interleaved(product: AccessApi, writer: IdpWriter, pages: list[dict[str, Any]]) -> Any:
    """The product's GET, letting the IdP write at least once before each snapshot page."""
    seen = writer.writes

    def get(path: str, params: dict[str, Any]) -> Any:
        nonlocal seen
        if path == "/access":
            seen = writer.wait_for_write(seen)
            page = product.get(path, params)
            pages.append(page)
            return page
        return product.get(path, params)

    return get


def assert_each_page_is_the_state_at_its_position(
    pages: list[dict[str, Any]], events: list[Any]
) -> None:
    """Every row is its user's access as of the page's position, by the event log; and every
    user in the page's id range missing from it had been deleted by then."""
    floor = ""
    for page in pages:
        position = page["position"]
        rows = {row["id"]: row["access"] for row in page["users"]}
        ceiling = page["users"][-1]["id"] if page["next_cursor"] else None
        last: dict[str, Any] = {}
        for event in events:
            if event.sequence <= position and event.type in reconcile.REPLICA_EVENTS:
                last[event.payload["user_id"]] = event
        for user, event in last.items():
            if floor < user and (ceiling is None or user <= ceiling):
                if user in rows:
                    assert event.type == "access.changed", (user, position)
                    assert event.payload["access"] == rows[user], (user, position)
                else:
                    assert event.type == "user.deleted", (user, position)
        assert set(rows) <= set(last), "a row no event announced"
        floor = ceiling or floor


def test_a_snapshot_read_while_the_idp_writes_plus_the_events_after_it_is_a_fresh_snapshot(
    app: Flask, scim_token: str, configured: Hub, product: AccessApi
) -> None:
    idp = Idp(ScimClient(app.test_client(), scim_token))
    groups = {name: idp.group(name) for name in MAPPED_GROUPS}
    writer = IdpWriter(idp, groups, seed=20261204)
    for _ in range(15):
        writer.created += 1
        writer.users.append(idp.user(f"joiner{writer.created}@msp.example"))

    for round_number in range(ROUNDS):
        pages: list[dict[str, Any]] = []
        thread = threading.Thread(target=writer.run, name=f"idp-writer-{round_number}")
        thread.start()
        try:
            replica = reconcile.load(interleaved(product, writer, pages), PAGE_SIZE)
            start = replica.position
            applied: list[dict[str, Any]] = []
            reconcile.catch_up(product.get, replica, applied.append)
        finally:
            writer.stop.set()
            thread.join(timeout=60)
        assert not writer.errors, writer.errors
        writer.stop.clear()
        reconcile.catch_up(product.get, replica, applied.append)

        fresh = reconcile.load(product.get, 50)
        assert replica.users == fresh.users, f"round {round_number}"
        assert replica.position == fresh.final_page_position
        positions = [page["position"] for page in pages]
        assert len(pages) >= 3, positions
        assert len(set(positions)) > 1, positions
        events = configured.events()
        assert_each_page_is_the_state_at_its_position(pages, events)
        # Exactly once: every later event of a user, after the position of the
        # page that user was read on, and nothing the snapshot already held.
        expected = [
            event.sequence
            for event in events
            if event.sequence > start
            and (
                event.payload.get("user_id") is None
                or event.sequence > replica.position_of(event.payload["user_id"])
            )
        ]
        assert [event["sequence"] for event in applied] == expected


def test_a_page_is_read_in_one_snapshot_and_the_next_transaction_is_ordinary_again(
    engine: Engine,
) -> None:
    sessions = make_session_factory(engine)
    with sessions() as session:
        session.execute(text("SELECT 1"))
        read_consistently(session)
        assert not session.in_nested_transaction()
        if engine.dialect.name == "postgresql":
            isolation = session.execute(text("SHOW transaction_isolation")).scalar_one()
            read_only = session.execute(text("SHOW transaction_read_only")).scalar_one()
            assert (isolation, read_only) == ("repeatable read", "on")
        else:
            # A deferred reader: it holds no write lock, so a writer can commit meanwhile.
            session.execute(text("SELECT count(*) FROM organizations"))
            with sessions() as writer:
                writer.add(Organization(name=f"org-{uuid.uuid4().hex[:12]}"))
                writer.commit()
        session.rollback()
    if engine.dialect.name == "postgresql":
        with sessions() as session:
            isolation = session.execute(text("SHOW transaction_isolation")).scalar_one()
            assert isolation == "read committed"


def test_a_replica_older_than_the_event_retention_is_told_to_load_again(
    idp: Idp, configured: Hub, product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    replica = reconcile.load(product.get)
    idp.group("PSA Technicians", [ada])
    idp.deactivate(ada)
    pruned = replica.position + 1
    configured.run(
        lambda s: s.execute(
            delete(Event).where(Event.org_id == configured.org_id, Event.sequence == pruned)
        )
    )

    with pytest.raises(reconcile.EventsPruned, match=f"events {pruned}..{pruned} were pruned"):
        reconcile.catch_up(product.get, replica)

    fresh = reconcile.load(product.get)
    assert fresh.users[ada]["active"] is False


def test_the_example_client_loads_the_organization_over_http(
    app: Flask,
    idp: Idp,
    configured: Hub,
    access_token: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    users = [idp.user(f"user{n}@msp.example") for n in range(5)]
    idp.group("PSA Technicians", users[:2])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        status = reconcile.main(["--url", url, "--token", access_token, "--limit", "2"])
    finally:
        server.shutdown()
        thread.join()

    last = max(event.sequence for event in configured.events())
    assert status == 0
    assert capsys.readouterr().out.strip() == f"5 users at position {last} (0 events applied)"
