"""A leaver asks to be forgotten: IT erases them from the trail (docs/personal-data.md#erasure).

Okta (or Entra) deletes the user first; ``hub-scim erase`` then replaces
their personal data everywhere the organization's trail holds it by one
pseudonym, keeping ids, order, times and what happened. The strong check
scans every text column of every table of the database for the old values.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import JSON, Engine, String, Text, select

from connector.admin.erasure import (
    REWRITTEN_TABLES,
    UNTOUCHED_TABLES,
    _Replacer,
    pseudonym_of,
    pseudonymized_document,
)
from connector.admin.grants import grant_manual
from connector.admin.mappings import apply_mapping
from connector.console.sessions import start_session
from connector.db.engine import make_session_factory
from connector.db.schema import metadata
from connector.errors import ANSWERS, InvalidInput, NotFound, Refused
from connector.trail.request_log import RequestLogFilter, query_requests
from connector.web.request_logging import request_recorder
from tests.scenarios import (
    AUDITORS,
    ENTERPRISE_SCHEMA,
    HUB_OWNERS,
    PSA_TECHNICIANS,
    USER_SCHEMA,
    Hub,
    Idp,
    mapping,
)

NEXT_MAPPING = mapping(HUB_OWNERS, PSA_TECHNICIANS, AUDITORS)


@dataclass(frozen=True)
class People:
    """This test's people: values no other test uses, so a scan of the database finds only them."""

    tag: str

    @property
    def ada(self) -> str:
        return f"Ada.Lovelace.{self.tag}@msp.example"

    @property
    def external_id(self) -> str:
        return f"00uADA{self.tag}"

    @property
    def personal(self) -> tuple[str, ...]:
        """Ada's personal data, as the scan looks for it (lower case)."""
        return (
            self.ada.lower(),
            f"ada.{self.tag}@home.example",
            self.external_id.lower(),
            f"ada lovelace {self.tag}",
            f"lovelace {self.tag}",
            f"+44 20 7946 {self.tag}",
            f"12 analytical row {self.tag}",
            f"e-{self.tag}",
        )

    @property
    def grace(self) -> str:
        return f"grace.hopper.{self.tag}@msp.example"

    @property
    def bada(self) -> str:
        """Another person whose address contains Ada's: never touched."""
        return f"bada.lovelace.{self.tag}@msp.example"


@pytest.fixture
def people() -> People:
    return People(uuid.uuid4().hex[:8])


def _ada(idp: Idp, people: People) -> str:
    tag = people.tag
    return idp.user(
        people.ada,
        externalId=people.external_id,
        displayName=f"Ada Lovelace {tag}",
        name={
            "givenName": "Ada",
            "familyName": f"Lovelace {tag}",
            "formatted": f"Ada Lovelace {tag}",
        },
        emails=[{"value": f"ada.{tag}@home.example", "type": "home", "primary": True}],
        phoneNumbers=[{"value": f"+44 20 7946 {tag}", "type": "work"}],
        addresses=[{"streetAddress": f"12 Analytical Row {tag}", "locality": "London"}],
        roles=[{"value": "psa-technician"}],
        schemas=[USER_SCHEMA, ENTERPRISE_SCHEMA],
        **{ENTERPRISE_SCHEMA: {"employeeNumber": f"E-{tag}"}},
    )


def _ada_leaves(idp: Idp, hub: Hub, app: Flask, org_id: int, people: People) -> str:
    """Ada works here (an Owner who used the console and granted access), then Okta deletes her."""
    hub.apply(mapping(HUB_OWNERS, PSA_TECHNICIANS))
    hub.product("psa", "active")
    # Okta looks a user up by userName before creating them.
    ada_name, grace_name = people.ada, people.grace
    idp.expect(idp.scim.get("/Users", query_string={"filter": f'userName eq "{ada_name}"'}), 200)
    ada = _ada(idp, people)
    grace = idp.user(grace_name)
    idp.user(people.bada)
    idp.group("Hub Owners", [ada])
    idp.group("PSA Technicians", [ada, grace])
    # A second push of the same user: refused as taken, with her userName in the detail.
    response = idp.scim.post("/Users", json={"schemas": [USER_SCHEMA], "userName": ada_name})
    assert response.status_code == 409
    # Ada in the console: signs in, grants Grace access, applies the mapping again.
    console_actor = f"console:{ada_name}"
    hub.run(lambda s: start_session(s, org_id, user_id=ada, user_name=ada_name, lifetime=_hour()))
    hub.run(
        lambda s: grant_manual(
            s, org_id, grace_name, "psa", ["technician"], ["psa.tickets.read"], actor=console_actor
        )
    )
    hub.run(lambda s: apply_mapping(s, org_id, NEXT_MAPPING, actor=console_actor, dry_run=False))
    hub.run(lambda s: grant_manual(s, org_id, ada_name, "psa", ["technician"], [], actor="cli:it"))
    idp.deactivate(ada)
    idp.delete_user(ada)
    recorder = request_recorder(app)
    assert recorder is not None
    recorder.flush()
    return ada


def _hour() -> timedelta:
    return timedelta(hours=1)


def _every_text(engine: Engine) -> list[tuple[str, str, str]]:
    """(table, column, lower-case text) of every text or JSON value of the database."""
    found = []
    with engine.connect() as connection:
        for table in metadata().sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            for row in connection.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value)
                    found.append((table.name, column.name, text.lower()))
    return found


def _forms(value: str) -> set[str]:
    """How a value may be written down: as is, JSON-escaped, URL-encoded."""
    return {
        value,
        json.dumps(value)[1:-1],
        quote(value, safe="").lower(),
        quote_plus(value, safe="").lower(),
        quote(value, safe="@").lower(),
        quote_plus(value, safe="@").lower(),
    }


def _traces(
    engine: Engine, values: tuple[str, ...], *, others: tuple[str, ...] = ()
) -> list[tuple[str, str, str]]:
    """Where ``values`` are still written, not counting inside ``others`` (longer values)."""
    found: list[tuple[str, str, str]] = []
    for table, column, text in _every_text(engine):
        for other in others:
            for form in _forms(other.lower()):
                text = text.replace(form, "")
        found.extend(
            (table, column, value)
            for value in values
            if any(form in text for form in _forms(value))
        )
    return found


def _trail(hub: Hub) -> tuple[list[Any], list[Any]]:
    audit = [(e.id, e.at, e.actor.startswith("console:"), e.action, e.target) for e in hub.audit()]
    events = [(e.id, e.sequence, e.type, e.subject, e.created_at) for e in hub.events()]
    return audit, events


def test_a_leaver_deleted_by_okta_and_erased_leaves_no_trace(
    idp: Idp,
    hub: Hub,
    app: Flask,
    engine: Engine,
    org_id: int,
    org_name: str,
    hub_scim: Callable[..., Result],
    people: People,
) -> None:
    ada = _ada_leaves(idp, hub, app, org_id, people)
    assert _traces(engine, people.personal), "the scenario must leave Ada in the trail"
    audit_before, events_before = _trail(hub)

    result = hub_scim("erase", "--org", org_name, people.ada, "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    pseudonym = pseudonym_of(org_id, ada)
    assert (report["user_id"], report["pseudonym"]) == (ada, pseudonym)
    assert set(report["rewritten"]) >= {"audit_log", "events", "scim_request_log"}
    assert _traces(engine, people.personal, others=(people.bada,)) == []
    # Everyone else is as they were.
    assert len(_traces(engine, (people.grace.lower(),))) > 5
    assert _traces(engine, (people.bada,))
    assert hub.access(people.grace)["userName"] == people.grace
    # Ids, order, times and what happened stay; the erase is one more entry and event.
    audit_after, events_after = _trail(hub)
    assert audit_after[:-1] == audit_before
    assert events_after[:-1] == events_before
    erased = hub.audit()[-1]
    assert (erased.action, erased.target) == ("user.erased", f"user:{ada}")
    assert erased.actor.startswith("cli")
    assert erased.after["pseudonym"] == pseudonym
    assert hub.events()[-1].type == "user.erased"
    assert hub.events()[-1].payload == {"user_id": ada, "userName": pseudonym}
    # The trail still reads: her creation, roles and grants, under one pseudonym.
    (created,) = hub.audit("user.created")[:1]
    assert created.after["userName"] == pseudonym
    assert created.after["id"] == ada
    assert created.after["active"] is True
    assert created.after["roles"] == [{"value": "psa-technician"}]
    assert created.after["emails"] == [{"value": pseudonym, "type": "home", "primary": True}]
    assert {e.payload.get("userName") for e in hub.events() if e.subject == ada} == {pseudonym}
    granted = [e for e in hub.audit("grant.manual_granted") if e.target == f"user:{ada}"]
    assert [entry.reason for entry in granted] == [f"manual grant of psa to {pseudonym}"]
    assert f"console:{pseudonym}" in {e.actor for e in hub.audit()}
    owner_steps = [e.action for e in hub.audit() if e.target == f"user:{ada}"]
    assert "owner.seated" in owner_steps


def test_erasing_a_user_still_in_the_directory_is_refused(
    idp: Idp,
    hub: Hub,
    engine: Engine,
    org_name: str,
    hub_scim: Callable[..., Result],
    people: People,
) -> None:
    ada = _ada(idp, people)
    active = hub_scim("erase", "--org", org_name, people.ada)
    idp.deactivate(ada)
    before = _trail(hub)

    deactivated = hub_scim("erase", "--org", org_name, ada)

    for result in (active, deactivated):
        assert result.exit_code == ANSWERS[Refused].exit_code, result.output
        assert "still in the directory" in result.output
        assert "Traceback" not in result.output
    assert _trail(hub) == before
    assert _traces(engine, people.personal)


def test_an_unknown_or_ambiguous_former_user_is_refused(
    idp: Idp, hub: Hub, org_name: str, hub_scim: Callable[..., Result], people: People
) -> None:
    ada_name = people.ada
    unknown = hub_scim("erase", "--org", org_name, "nobody@msp.example")
    assert unknown.exit_code == ANSWERS[NotFound].exit_code, unknown.output
    # Ada left, came back as a new user, and left again: two former users.
    first = idp.user(ada_name)
    idp.delete_user(first)
    second = idp.user(ada_name)
    idp.delete_user(second)

    ambiguous = hub_scim("erase", "--org", org_name, ada_name)

    assert ambiguous.exit_code == ANSWERS[InvalidInput].exit_code, ambiguous.output
    assert f"{min(first, second)}, {max(first, second)}" in ambiguous.output
    assert hub_scim("erase", "--org", org_name, first).exit_code == 0
    assert hub_scim("erase", "--org", org_name, ada_name).exit_code == 0
    assert len(hub.audit("user.erased")) == 2


def test_an_erased_user_provisioned_again_is_a_new_person(
    idp: Idp,
    hub: Hub,
    app: Flask,
    engine: Engine,
    org_id: int,
    org_name: str,
    hub_scim: Callable[..., Result],
    people: People,
) -> None:
    ada_name = people.ada
    ada = _ada_leaves(idp, hub, app, org_id, people)
    assert hub_scim("erase", "--org", org_name, ada_name).exit_code == 0

    again = idp.user(ada_name)
    recorder = request_recorder(app)
    assert recorder is not None
    recorder.flush()

    assert again != ada
    assert hub.access(ada_name)["id"] == again
    with make_session_factory(engine)() as session:
        logged = query_requests(session, org_id, RequestLogFilter(user=ada_name)).requests
    assert {row.resource_id for row in logged} == {again}
    old = [e for e in hub.audit() if e.target == f"user:{ada}"]
    assert old
    assert all(ada_name.lower() not in json.dumps(e.to_json()).lower() for e in old)
    # Only the new person's own rows name her.
    quoted = json.dumps(ada_name.lower())
    named = {e.target for e in hub.audit() if quoted in json.dumps(e.to_json()).lower()}
    assert named == {f"user:{again}"}


def test_every_table_holding_text_is_rewritten_or_known_to_hold_no_leaver(engine: Engine) -> None:
    with_text = {
        table.name
        for table in metadata().sorted_tables
        if any(isinstance(c.type, String | Text | JSON) for c in table.columns)
    }
    assert with_text <= set(REWRITTEN_TABLES) | set(UNTOUCHED_TABLES)
    assert not set(REWRITTEN_TABLES) & set(UNTOUCHED_TABLES)


# -- the rules of replacement, without a database ------------------------------------------


def test_identifiers_are_replaced_whole_however_they_are_written() -> None:
    replace = _Replacer(["ada@x.example"], "erased-1")

    assert replace.text("manual grant of psa to ADA@x.example.") == (
        "manual grant of psa to erased-1."
    )
    assert replace.text("bada@x.example") == "bada@x.example"
    assert replace.text("ada@x.example.org") == "ada@x.example.org"
    assert replace.path("/scim/v2/Users?filter=userName%20eq%20%22ada%40x.example%22&count=1") == (
        "/scim/v2/Users?filter=userName%20eq%20%22erased-1%22&count=1"
    )
    assert replace.path("/scim/v2/Users?filter=userName+eq+%22ada@x.example%22") == (
        "/scim/v2/Users?filter=userName%20eq%20%22erased-1%22"
    )
    assert replace.json({"userName": "ada@x.example", "n": 1}) == {"userName": "erased-1", "n": 1}


def test_a_document_keeps_its_shape_and_what_it_granted() -> None:
    document = {
        "schemas": [USER_SCHEMA],
        "id": "u1",
        "userName": "ada@x.example",
        "name": {"givenName": "Ada"},
        "emails": [{"value": "ada@x.example", "type": "work", "primary": True}],
        "active": False,
        "roles": [{"value": "admin"}],
        ENTERPRISE_SCHEMA: {"employeeNumber": "7"},
    }

    assert pseudonymized_document(document, "erased-1") == {
        "schemas": [USER_SCHEMA],
        "id": "u1",
        "userName": "erased-1",
        "name": {"givenName": "erased-1"},
        "emails": [{"value": "erased-1", "type": "work", "primary": True}],
        "active": False,
        "roles": [{"value": "admin"}],
        ENTERPRISE_SCHEMA: {"employeeNumber": "erased-1"},
    }


def test_a_product_named_by_an_event_is_no_former_user(
    hub: Hub, org_name: str, hub_scim: Callable[..., Result]
) -> None:
    # product.state_changed names the product as its subject: it is no user to erase.
    hub.product("psa", "trial")
    before = _trail(hub)
    result = hub_scim("erase", "--org", org_name, "psa")
    assert result.exit_code == ANSWERS[NotFound].exit_code, result.output
    assert _trail(hub) == before
    assert not hub.audit("user.erased")
