"""Okta and Entra drive the real lifecycle in their own dialects; Hub's products see the outcome.

Request bodies are shaped as each IdP sends them (``tests/replay/`` has the
full sequences); the outcome is read the way a product reads it, through
``/api/v1`` with an ``access`` credential.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures_app import ScimClient
from tests.scenarios import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    HUB_OWNERS,
    PATCH_SCHEMA,
    PSA_TECHNICIANS,
    USER_SCHEMA,
    AccessApi,
    Hub,
    mapping,
)

MICROSOFT_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


@pytest.fixture
def mapped(hub: Hub) -> None:
    """IT maps "Hub Owners" to Owner and "PSA Technicians" to PSA, and enables PSA."""
    hub.apply(mapping(HUB_OWNERS, PSA_TECHNICIANS))
    hub.product("psa", "active")


def okta_create(scim: ScimClient, login: str) -> str:
    """Okta looks the user up, then creates it with its default profile mappings."""
    lookup = scim.get(f'/Users?filter=userName eq "{login}"&startIndex=1&count=100')
    assert lookup.get_json()["totalResults"] == 0
    created = scim.post(
        "/Users",
        json={
            "schemas": [USER_SCHEMA],
            "userName": login,
            "name": {"givenName": login.split("@")[0].title(), "familyName": "Okta"},
            "emails": [{"primary": True, "value": login, "type": "work"}],
            "displayName": login,
            "locale": "en-US",
            "externalId": "00u" + login.split("@")[0],
            "groups": [],
            "password": "1mP0ssible!",
            "active": True,
        },
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    assert "password" not in created.get_json()
    return str(created.get_json()["id"])


def entra_create(scim: ScimClient, upn: str) -> str:
    """Entra creates with the enterprise extension and string booleans it sometimes sends."""
    created = scim.post(
        "/Users",
        json={
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "externalId": upn.split("@")[0],
            "userName": upn,
            "active": True,
            "displayName": upn.split("@")[0].title(),
            "emails": [{"primary": True, "type": "work", "value": upn}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "x", "familyName": "Entra", "givenName": "x"},
            ENTERPRISE_SCHEMA: {"department": "Service Desk"},
        },
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    return str(created.get_json()["id"])


def entra_set_active(scim: ScimClient, user: str, value: str) -> Any:
    """Entra disables or restores a user: a capitalized op and a string boolean."""
    return scim.patch(
        f"/Users/{user}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "Replace", "path": "active", "value": value}],
        },
    )


def test_okta_group_push_of_hub_owners_seats_two_and_holds_the_third(
    scim: ScimClient, mapped: None, product: AccessApi
) -> None:
    ada, bob, cy = (okta_create(scim, f"{n}@acme.example") for n in ("ada", "bob", "cy"))
    pushed = scim.post(
        "/Groups",
        json={"schemas": [GROUP_SCHEMA], "displayName": "Hub Owners", "members": []},
    )
    assert pushed.status_code == 201
    group = pushed.get_json()["id"]
    # Okta pushes the members in one PATCH, with display names.
    patched = scim.patch(
        f"/Groups/{group}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {
                    "op": "add",
                    "path": "members",
                    "value": [
                        {"value": user, "display": f"{name}@acme.example"}
                        for user, name in ((ada, "ada"), (bob, "bob"), (cy, "cy"))
                    ],
                }
            ],
        },
    )
    assert patched.status_code == 204

    assert [product.effective_access(u)["role"] for u in (ada, bob)] == ["owner", "owner"]
    held = product.effective_access(cy)
    assert (held["role"], held["held"]) == ("admin", True)

    # Okta deactivates a seated Owner (no path): the held one takes the seat.
    deactivated = scim.patch(
        f"/Users/{ada}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        },
    )
    assert deactivated.status_code == 200
    assert product.effective_access(ada)["active"] is False
    assert product.effective_access(ada)["role"] is None
    seated = product.effective_access(cy)
    assert (seated["role"], seated["held"]) == ("owner", False)


def test_entra_disables_a_seated_owner_and_the_held_one_is_seated(
    scim: ScimClient, mapped: None, product: AccessApi
) -> None:
    ada, bob, cy = (entra_create(scim, f"{n}@contoso.example") for n in ("ada", "bob", "cy"))
    created = scim.post(
        "/Groups",
        json={
            "schemas": [GROUP_SCHEMA, MICROSOFT_GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Hub Owners",
            "members": [],
        },
    )
    assert created.status_code == 201
    group = created.get_json()["id"]
    # Entra adds members one batch at a time, capitalized ops, no display.
    for user in (ada, bob, cy):
        added = scim.patch(
            f"/Groups/{group}",
            json={
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "Add", "path": "members", "value": [{"value": user}]}],
            },
        )
        assert added.status_code == 204
    assert product.effective_access(cy)["held"] is True

    disabled = entra_set_active(scim, bob, "False")
    assert disabled.status_code == 200
    assert product.effective_access(bob)["role"] is None
    seated = product.effective_access(cy)
    assert (seated["role"], seated["held"]) == ("owner", False)


def test_an_entra_leaver_loses_grants_and_a_rejoiner_gets_current_groups_only(
    scim: ScimClient, mapped: None, product: AccessApi
) -> None:
    dan = entra_create(scim, "dan@contoso.example")
    techs = scim.post(
        "/Groups",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "PSA Technicians",
            "members": [{"value": dan}],
        },
    ).get_json()["id"]
    assert set(product.effective_access(dan)["products"]["psa"]["permissions"]) == {
        "psa.tickets.read",
        "psa.tickets.create",
    }

    entra_set_active(scim, dan, "False")
    gone = product.effective_access(dan)
    assert (gone["active"], gone["role"], gone["products"]) == (False, None, {})

    # While away, Entra removes dan from the technicians by value list.
    removed = scim.patch(
        f"/Groups/{techs}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"value": dan}]}],
        },
    )
    assert removed.status_code == 204
    entra_set_active(scim, dan, "True")
    back = product.effective_access(dan)
    assert (back["active"], back["role"], back["products"]) == (True, "member", {})
