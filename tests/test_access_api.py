"""The access API as Hub's products use it, after Okta pushed the directory and IT mapped it.

Every scenario goes through the real app: the IdP pushes users and groups over
SCIM, IT's mapping is applied with the provisioning service, and a product
asks ``/api/v1`` with its ``access`` credential.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.fixtures_app import ScimClient
from tests.scenarios import OWNERS_MAPPING, AccessApi, Hub, Idp


@pytest.fixture
def it_admin(hub: Hub) -> Callable[..., None]:
    """IT applies the mapping and sets product states, as `hub-scim` does, committed."""

    def configure(mapping: str = OWNERS_MAPPING, **states: str) -> None:
        hub.apply(mapping)
        for name, state in states.items():
            hub.product(name, state)

    return configure


def rule_names(sources: list[dict[str, Any]]) -> list[str]:
    return [source.get("description", "") for source in sources]


# -- a product reads access ------------------------------------------------------


def test_psa_reads_a_technicians_access_with_where_it_came_from(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    it_admin(psa="active")

    response = product.access("ada@msp.example")

    assert response.status_code == 200
    assert response.content_type == "application/json"
    access = response.json
    assert access["active"] is True
    assert access["role"] == "member"
    assert access["held"] is False
    psa = access["products"]["psa"]
    assert psa["roles"] == ["technician"]
    assert psa["permissions"] == ["psa.tickets.create", "psa.tickets.read"]
    assert psa["onboarding"] == "pending"
    assert any("PSA Technicians" in name for name in rule_names(psa["sources"]))
    assert access["dormant"] == {}


def test_a_user_is_found_by_id_or_by_user_name(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    it_admin()

    by_id = product.access(ada)
    by_name = product.access("ada@msp.example")

    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json == by_name.json


def test_a_grant_of_a_product_not_subscribed_is_shown_dormant(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    it_admin(psa="not_subscribed")

    access = product.access(ada).json

    assert "psa" not in access["products"]
    assert access["dormant"]["psa"]["permissions"] == ["psa.tickets.create", "psa.tickets.read"]
    decision = product.authorize(ada, "psa.tickets.create").json
    assert decision["allowed"] is False
    assert "dormant" in decision["reason"]


# -- may this user do X ------------------------------------------------------------


def test_authorize_allows_a_granted_permission_naming_the_rule(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    it_admin(psa="active")

    response = product.authorize(ada, "psa.tickets.create")

    assert response.status_code == 200
    assert response.json["allowed"] is True
    assert response.json["permission"] == "psa.tickets.create"
    assert "PSA Technicians" in response.json["reason"]


@pytest.mark.parametrize(
    ("permission", "reason"),
    [
        ("psa.tickets.delete", "is not granted"),
        ("crm.contacts.read", "not granted"),
        ("psa.unicorns.ride", "unknown permission"),
    ],
)
def test_authorize_denies_with_the_reason(
    idp: Idp,
    it_admin: Callable[..., None],
    product: AccessApi,
    permission: str,
    reason: str,
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    it_admin(psa="active", crm="active")

    response = product.authorize(ada, permission)

    assert response.status_code == 200
    assert response.json["allowed"] is False
    assert reason in response.json["reason"]


def test_a_viewer_keeps_only_read_permissions_whatever_the_grants_say(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    idp.group("Auditors", [ada])
    it_admin(psa="active")

    create = product.authorize(ada, "psa.tickets.create").json
    read = product.authorize(ada, "psa.tickets.read").json

    assert (create["allowed"], read["allowed"]) == (False, True)
    assert "Viewer" in create["reason"]


@pytest.mark.parametrize(
    "body",
    [
        {"permission": "not a permission"},
        {"permission": "psa"},
        {"permission": 42},
        {"permission": "x" * 500 + ".read"},
        {},
        ["psa.tickets.read"],
        "psa.tickets.read",
    ],
)
def test_a_malformed_authorize_body_is_400_json(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi, body: Any
) -> None:
    ada = idp.user("ada@msp.example")
    it_admin()

    response = product.client.post(
        f"/api/v1/access/{ada}/authorize", json=body, headers=product.headers()
    )

    assert response.status_code == 400
    assert set(response.json) == {"error", "detail"}


def test_a_body_that_is_not_json_is_400_json(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    it_admin()

    response = product.client.post(
        f"/api/v1/access/{ada}/authorize",
        data=b"{permission: psa",
        content_type="application/json",
        headers=product.headers(),
    )

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


# -- onboarding ---------------------------------------------------------------------


def test_onboarding_shows_once_per_user_per_product(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    it_admin(psa="active")

    first = product.onboarded(ada, "psa")
    again = product.onboarded("ada@msp.example", "psa")

    assert first.status_code == again.status_code == 200
    assert first.json == {"product": "psa", "onboarding": "done", "first_time": True}
    assert again.json["first_time"] is False
    assert product.access(ada).json["products"]["psa"]["onboarding"] == "done"


def test_onboarding_of_an_unknown_product_is_404(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    it_admin()

    response = product.onboarded(ada, "spreadsheets")

    assert response.status_code == 404
    assert "unknown product" in response.json["detail"]


# -- leavers and immediacy ----------------------------------------------------------


def test_a_leavers_access_is_gone_in_the_very_next_query(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])
    it_admin(psa="active")
    assert product.authorize(ada, "psa.tickets.create").json["allowed"] is True

    idp.deactivate(ada)

    access = product.access(ada).json
    assert access["active"] is False
    assert access["role"] is None
    assert access["products"] == {}
    decision = product.authorize(ada, "psa.tickets.read").json
    assert decision["allowed"] is False
    assert "inactive" in decision["reason"]


def test_okta_pushes_three_owners_two_are_seated_and_the_third_waits(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    it_admin()
    ada, grace, linus = (idp.user(f"{name}@msp.example") for name in ("ada", "grace", "linus"))

    idp.group("Hub Owners", [ada, grace, linus])

    roles = {user: product.access(user).json for user in (ada, grace, linus)}
    assert [roles[user]["role"] for user in (ada, grace, linus)] == ["owner", "owner", "admin"]
    assert roles[linus]["held"] is True

    idp.deactivate(ada)

    seated = product.access(linus).json
    assert seated["role"] == "owner"
    assert seated["held"] is False


# -- tenancy and credentials --------------------------------------------------------


def test_another_organizations_user_is_404_like_an_unknown_one(
    idp: Idp,
    other_org_idp: Idp,
    it_admin: Callable[..., None],
    product: AccessApi,
) -> None:
    it_admin()
    theirs = other_org_idp.user("ada@other.example")

    by_id = product.access(theirs)
    by_name = product.access("ada@other.example")
    unknown = product.access("nobody@msp.example")
    authorize = product.authorize(theirs, "psa.tickets.read")
    onboarding = product.onboarded(theirs, "psa")

    for response in (by_id, by_name, unknown, authorize, onboarding):
        assert response.status_code == 404
        assert response.json["error"] == "not_found"
    assert by_id.json["detail"] == f"no user {theirs!r} in this organization"


def test_a_scim_credential_is_refused_with_insufficient_scope(
    client: FlaskClient, scim_token: str
) -> None:
    response = AccessApi(client, scim_token).access("anyone")

    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert 'scope="access"' in response.headers["WWW-Authenticate"]


def test_an_access_credential_is_refused_on_scim_routes(
    client: FlaskClient, access_token: str
) -> None:
    response = ScimClient(client, access_token).get("/Users")

    assert response.status_code == 403
    assert 'scope="scim"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("token", "error"), [(None, "unauthorized"), ("hubscim_not-a-token", "invalid_token")]
)
def test_without_a_valid_credential_the_answer_is_401(
    client: FlaskClient, token: str | None, error: str
) -> None:
    response = AccessApi(client, token).access("anyone")

    assert response.status_code == 401
    assert response.json["error"] == error
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="hub-scim"')


def test_a_product_over_the_rate_limit_is_told_when_to_retry(
    app_factory: Callable[..., Flask], access_token: str
) -> None:
    app = app_factory(rate_limit_per_minute=60, rate_limit_burst=1)
    product = AccessApi(app.test_client(), access_token)

    product.access("anyone")
    limited = product.access("anyone")

    assert limited.status_code == 429
    assert limited.json["error"] == "too_many_requests"
    assert int(limited.headers["Retry-After"]) >= 1


def test_an_unknown_endpoint_is_json_not_html(product: AccessApi) -> None:
    response = product.client.get("/api/v1/nothing/here", headers=product.headers())

    assert response.status_code == 404
    assert response.json["error"] == "not_found"


# -- events for products that poll --------------------------------------------------


def test_a_polling_product_reads_each_access_change_once_in_order(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    it_admin(psa="active")
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])

    first = product.events().json
    idp.deactivate(ada)
    second = product.events(after=first["next_after"]).json

    assert first["events"], "the grant was announced"
    sequences = [event["sequence"] for event in first["events"] + second["events"]]
    assert sequences == sorted(set(sequences))
    assert second["events"], "the leaver was announced"
    assert ada in {event["subject"] for event in second["events"]}
    assert product.events(after=second["next_after"]).json["events"] == []


def test_a_cursor_past_every_event_is_an_empty_page_on_both_databases(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    """Sequences are 32-bit columns; a cursor beyond them (up to 2**63-1) still answers."""
    it_admin()
    idp.user("ada@msp.example")

    for after in (2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1):
        page = product.events(after=after)
        assert page.status_code == 200, page.json
        assert page.json == {"events": [], "next_after": after}


def test_events_are_paged_with_limit(
    idp: Idp, it_admin: Callable[..., None], product: AccessApi
) -> None:
    it_admin()
    for name in ("ada", "grace", "linus"):
        idp.user(f"{name}@msp.example")
    everything = product.events(limit=1000).json["events"]

    page = product.events(limit=1).json

    assert len(page["events"]) == 1
    assert page["next_after"] == everything[0]["sequence"]


@pytest.mark.parametrize(
    "query", [{"after": "yesterday"}, {"after": -1}, {"limit": 0}, {"limit": 100_000}]
)
def test_bad_event_query_parameters_are_400(product: AccessApi, query: dict[str, Any]) -> None:
    response = product.events(**query)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_events_of_another_organization_are_never_shown(
    other_org_idp: Idp, product: AccessApi
) -> None:
    other_org_idp.user("ada@other.example")

    assert product.events().json == {"events": [], "next_after": 0}
