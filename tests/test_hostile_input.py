"""A hostile or broken client gets a clear 400 and a SCIM Error, never a 500, and never costs much.

The caps are documented in README.md ("Configuration"): 100 entries in a
User's multi-valued attributes (a group's members are not capped), a budget
of work for one PATCH, fewer comparisons inside value paths, and a request
body at most 32 levels deep (RFC 7644 section 3.12).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine

from connector.tenancy.credentials import Scope
from connector.tenancy.oauth import TOKEN_PATH
from tests.fixtures_app import ScimClient, issue_token

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def emails(count: int, domain: str = "example.com") -> list[dict[str, str]]:
    return [{"value": f"u{index}@{domain}", "type": "other"} for index in range(count)]


def user(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def assert_scim_error(response: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.data[:300]
    body: dict[str, Any] = response.get_json(force=True)
    assert body["schemas"] == [ERROR_SCHEMA]
    if scim_type is not None:
        assert body["scimType"] == scim_type
    return body


# -- multi-valued attributes ----------------------------------------------------------


def test_a_user_with_a_hundred_emails_is_accepted_and_one_more_is_refused(
    scim: ScimClient,
) -> None:
    assert scim.post("/Users", json=user("ada", emails=emails(100))).status_code == 201

    refused = scim.post("/Users", json=user("bob", emails=emails(101)))

    body = assert_scim_error(refused, 400, "invalidValue")
    assert "emails" in body["detail"]
    assert "100" in body["detail"]
    assert (
        scim.get("/Users", query_string={"filter": 'userName eq "bob"'}).get_json()["totalResults"]
        == 0
    )


def test_a_put_with_too_many_roles_is_refused_and_changes_nothing(scim: ScimClient) -> None:
    created = scim.post("/Users", json=user("ada", roles=[{"value": "admin"}])).get_json()
    roles = [{"value": f"role-{index}"} for index in range(101)]

    refused = scim.put(f"/Users/{created['id']}", json=user("ada", roles=roles))

    assert "roles" in assert_scim_error(refused, 400, "invalidValue")["detail"]
    assert scim.get(f"/Users/{created['id']}").get_json()["roles"] == [{"value": "admin"}]


def test_a_patch_that_would_leave_too_many_emails_is_refused(scim: ScimClient) -> None:
    created = scim.post("/Users", json=user("ada", emails=emails(99))).get_json()

    refused = scim.patch(
        f"/Users/{created['id']}",
        json=patch({"op": "add", "path": "emails", "value": emails(2, "other.example")}),
    )

    assert "emails" in assert_scim_error(refused, 400, "invalidValue")["detail"]
    assert len(scim.get(f"/Users/{created['id']}").get_json()["emails"]) == 99


def test_a_bulk_post_over_the_cap_fails_alone(scim: ScimClient) -> None:
    response = scim.post(
        "/Bulk",
        json={
            "schemas": [BULK_SCHEMA],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": user("a")},
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "b",
                    "data": user("b", phoneNumbers=[{"value": str(n)} for n in range(101)]),
                },
            ],
        },
    )

    statuses = [operation["status"] for operation in response.get_json()["Operations"]]
    assert statuses == ["201", "400"]


def test_group_members_are_not_capped(scim: ScimClient) -> None:
    ids = [
        scim.post("/Users", json=user(f"member-{index}")).get_json()["id"] for index in range(120)
    ]

    response = scim.post(
        "/Groups",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "Everyone",
            "members": [{"value": member} for member in ids],
        },
    )

    assert response.status_code == 201


# -- the work of one PATCH ------------------------------------------------------------


def test_filtered_patch_operations_over_a_long_list_are_refused_as_too_many(
    scim: ScimClient,
) -> None:
    created = scim.post("/Users", json=user("ada", emails=emails(100))).get_json()
    operations = [
        {"op": "replace", "path": f'emails[value eq "u{index}@example.com"].display', "value": "x"}
        for index in range(25)
    ]

    refused = scim.patch(f"/Users/{created['id']}", json=patch(*operations))

    body = assert_scim_error(refused, 400, "tooMany")
    assert "2000" in body["detail"]
    assert all("display" not in e for e in scim.get(f"/Users/{created['id']}").get_json()["emails"])


def test_more_operations_than_the_work_budget_are_refused_before_any_is_validated(
    scim: ScimClient,
) -> None:
    created = scim.post("/Users", json=user("ada", emails=emails(1))).get_json()
    many = {"op": "replace", "path": 'emails[value eq "u0@example.com"].display', "value": "y"}
    started = time.process_time()

    refused = scim.patch(f"/Users/{created['id']}", json=patch(*[many] * 9000))
    missing = scim.patch("/Users/no-such-user", json=patch(*[many] * 9000))

    # Validating 9,000 operations cost over a second of CPU before they were counted.
    assert time.process_time() - started < 0.8
    for answer in (refused, missing):
        body = assert_scim_error(answer, 400, "tooMany")
        assert "at least 9000" in body["detail"]
    assert "display" not in scim.get(f"/Users/{created['id']}").get_json()["emails"][0]


def test_an_entra_style_patch_with_a_few_filtered_operations_applies(scim: ScimClient) -> None:
    created = scim.post("/Users", json=user("ada", emails=emails(100))).get_json()
    operations = [
        {"op": "replace", "path": f'emails[value eq "u{index}@example.com"].display', "value": "x"}
        for index in range(5)
    ]

    response = scim.patch(f"/Users/{created['id']}", json=patch(*operations))

    assert response.status_code == 200
    assert sum(1 for e in response.get_json()["emails"] if e.get("display") == "x") == 5


def test_an_okta_membership_patch_of_thousands_of_members_is_not_weighed(
    scim: ScimClient,
) -> None:
    group = scim.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "All"}).get_json()
    operations = [
        {"op": "add", "path": "members", "value": [{"value": f"00000000-0000-0000-0000-{n:012d}"}]}
        for n in range(2500)
    ]

    response = scim.patch(f"/Groups/{group['id']}", json=patch(*operations))

    # Unknown member ids are refused or ignored by the membership rules; what
    # matters here is that the work budget does not apply to member deltas.
    assert response.status_code != 400 or "tooMany" not in response.get_data(as_text=True)


# -- filters ------------------------------------------------------------------------


def test_value_path_comparisons_have_a_lower_cap(scim: ScimClient) -> None:
    term = 'emails[value co "9" and not (type eq "work")]'

    accepted = scim.get("/Users", query_string={"filter": " or ".join([term] * 10)})
    refused = scim.get("/Users", query_string={"filter": " or ".join([term] * 11)})

    assert accepted.status_code == 200
    assert "value paths" in assert_scim_error(refused, 400, "invalidFilter")["detail"]


# -- numbers beyond 64 bits -----------------------------------------------------------


def test_a_start_index_beyond_64_bits_is_refused_and_the_largest_answers_an_empty_page(
    scim: ScimClient,
) -> None:
    scim.post("/Users", json=user("ada"))

    largest = scim.get("/Users", query_string={"startIndex": str(2**63 - 1)})
    beyond = scim.get("/Users", query_string={"startIndex": str(2**63)})
    searched = scim.post("/Users/.search", json={"startIndex": 2**64})

    assert largest.status_code == 200
    assert largest.get_json()["Resources"] == []
    assert "startIndex" in assert_scim_error(beyond, 400, "invalidValue")["detail"]
    assert_scim_error(searched, 400, "invalidValue")


def test_an_events_cursor_beyond_64_bits_is_a_bad_request(
    client: FlaskClient, engine: Engine, org_id: int
) -> None:
    token = issue_token(engine, org_id, Scope.ACCESS)

    response = client.get(
        "/api/v1/events",
        query_string={"after": str(10**30)},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


# -- deep nesting ---------------------------------------------------------------------


def test_a_role_holding_deeply_nested_json_is_kept_as_text(scim: ScimClient) -> None:
    nested = "{" + '"a":[' * 5000 + "]" * 5000 + "}"

    response = scim.post("/Users", json=user("ada", roles=[{"value": nested}]))

    assert response.status_code == 201
    assert response.get_json()["roles"][0]["value"] == nested


def test_a_bulk_operation_nested_600_levels_is_invalid_syntax(scim: ScimClient) -> None:
    data: dict[str, Any] = {}
    level = data
    for _ in range(600):
        level["x"] = {}
        level = level["x"]
    body = {
        "schemas": [BULK_SCHEMA],
        "Operations": [{"method": "POST", "path": "/Users", "bulkId": "a", "data": data}],
    }

    response = scim.post("/Bulk", data=json.dumps(body), content_type="application/scim+json")

    assert "levels" in assert_scim_error(response, 400, "invalidSyntax")["detail"]


def test_an_authorize_call_with_a_deeply_nested_body_is_a_bad_request(
    client: FlaskClient, engine: Engine, org_id: int, scim: ScimClient
) -> None:
    scim.post("/Users", json=user("ada"))
    token = issue_token(engine, org_id, Scope.ACCESS)

    response = client.post(
        "/api/v1/access/ada/authorize",
        data="[" * 100_000 + "]" * 100_000,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


# -- the token endpoint ---------------------------------------------------------------


def test_basic_credentials_that_are_not_utf8_are_an_invalid_client(client: FlaskClient) -> None:
    garbage = base64.b64encode(b"\xff\xfe:\xfa\xfb").decode()

    response = client.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {garbage}"},
    )

    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
