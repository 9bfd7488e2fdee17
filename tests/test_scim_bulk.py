"""Bulk requests (RFC 7644 section 3.7): bulkId references, limits, failOnErrors."""

import pytest
from sqlalchemy.exc import OperationalError

from connector.directory.store import DirectoryStore
from scim.backend import ResourceKind
from scim.limits import Deadline
from scim.settings import ScimSettings
from tests.fake_backend import patch_op, user
from tests.scenarios import Idp

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def protocol_settings():
    return ScimSettings(bulk_max_operations=5, bulk_max_payload_bytes=4096)


def bulk(*operations, **fields):
    return {"schemas": [BULK_REQUEST], "Operations": list(operations), **fields}


def post_user(bulk_id, name, **attributes):
    return {"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": user(name, **attributes)}


def test_bulk_creates_users_and_a_group_referencing_them(api, store):
    response = api.post(
        "/Bulk",
        bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "owners",
                "data": {
                    "displayName": "Hub Owners",
                    "members": [{"value": "bulkId:ada"}, {"value": "bulkId:grace"}],
                },
            },
            post_user("ada", "ada@example.com"),
            post_user(
                "grace",
                "grace@example.com",
                **{ENTERPRISE: {"manager": {"value": "bulkId:ada"}}},
            ),
        ),
    )
    assert response.status_code == 200
    assert response.json["schemas"] == [BULK_RESPONSE]
    results = response.json["Operations"]
    assert [result["status"] for result in results] == ["201", "201", "201"]
    assert [result["bulkId"] for result in results] == ["owners", "ada", "grace"]
    ada_id = results[1]["location"].rsplit("/", 1)[1]
    grace = api.get(results[2]["location"].removeprefix("http://localhost/scim/v2")).json
    assert grace[ENTERPRISE]["manager"]["value"] == ada_id
    owners = api.get(results[0]["location"].removeprefix("http://localhost/scim/v2")).json
    assert {member["value"] for member in owners["members"]} == {
        ada_id,
        grace["id"],
    }
    assert results[0]["version"].startswith('W/"')
    assert store.commits == 1


def test_bulk_put_patch_delete_with_references_in_paths(api):
    response = api.post(
        "/Bulk",
        bulk(
            post_user("ada", "ada@example.com"),
            {
                "method": "PATCH",
                "path": "/Users/bulkId:ada",
                "data": patch_op({"op": "replace", "path": "title", "value": "Countess"}),
            },
            {
                "method": "PUT",
                "path": "/Users/bulkId:ada",
                "data": user("ada@example.com", nickName="A"),
            },
            {"method": "DELETE", "path": "/Users/bulkId:ada"},
        ),
    )
    results = response.json["Operations"]
    assert [result["status"] for result in results] == ["201", "200", "200", "204"]
    assert len({result["location"] for result in results}) == 1
    assert "bulkId" not in results[3]["location"]
    assert api.get("/Users").json["totalResults"] == 0


def test_failed_operation_is_reported_and_the_others_go_on(api, store):
    api.post("/Users", user("taken@example.com"))
    response = api.post(
        "/Bulk",
        bulk(
            post_user("dup", "taken@example.com"),
            post_user("ok", "fresh@example.com"),
            {"method": "PATCH", "path": "/Users/nope", "data": patch_op({"op": "remove"})},
        ),
    )
    results = response.json["Operations"]
    assert results[0]["status"] == "409"
    assert results[0]["response"]["scimType"] == "uniqueness"
    assert "location" not in results[0]
    assert results[1]["status"] == "201"
    assert results[2]["status"] in ("400", "404")
    assert api.get("/Users").json["totalResults"] == 2


def test_fail_on_errors_stops_processing(api):
    response = api.post(
        "/Bulk",
        bulk(
            {"method": "DELETE", "path": "/Users/missing-1"},
            {"method": "DELETE", "path": "/Users/missing-2"},
            post_user("late", "late@example.com"),
            failOnErrors=2,
        ),
    )
    assert [result["status"] for result in response.json["Operations"]] == ["404", "404"]
    assert api.get("/Users").json["totalResults"] == 0


def test_reference_to_a_failed_creation_fails_with_409(api):
    api.post("/Users", user("taken@example.com"))
    response = api.post(
        "/Bulk",
        bulk(
            post_user("dup", "taken@example.com"),
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": {"displayName": "G", "members": [{"value": "bulkId:dup"}]},
            },
            {"method": "DELETE", "path": "/Users/bulkId:unknown"},
        ),
    )
    assert [result["status"] for result in response.json["Operations"]] == ["409", "409", "409"]


def test_circular_references_fail(api):
    response = api.post(
        "/Bulk",
        bulk(
            post_user("a", "a@example.com", **{ENTERPRISE: {"manager": {"value": "bulkId:b"}}}),
            post_user("b", "b@example.com", **{ENTERPRISE: {"manager": {"value": "bulkId:a"}}}),
        ),
    )
    assert {result["status"] for result in response.json["Operations"]} == {"409"}


def test_too_many_operations_is_413(api, store):
    response = api.post("/Bulk", bulk(*(post_user(f"u{n}", f"u{n}@example.com") for n in range(6))))
    assert response.status_code == 413
    assert response.json["status"] == "413"
    assert not [call for call in store.calls if call[0] == "create"]


def test_payload_over_max_payload_size_is_413(api):
    response = api.post("/Bulk", bulk(post_user("big", "big@example.com", displayName="x" * 5000)))
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": [BULK_REQUEST]},
        {"schemas": ["urn:wrong"], "Operations": [{"method": "DELETE", "path": "/Users/x"}]},
        bulk(post_user("same", "a@example.com"), post_user("same", "b@example.com")),
        bulk({"method": "DELETE", "path": "/Users/x"}, failOnErrors=0),
    ],
)
def test_malformed_bulk_requests_are_400(api, body):
    assert api.post("/Bulk", body).status_code == 400


@pytest.mark.parametrize(
    "operation",
    [
        {"method": "GET", "path": "/Users/x"},
        {"method": "POST", "path": "/Widgets", "bulkId": "w", "data": {}},
        {"method": "POST", "path": "/Users", "data": user("nobulkid@example.com")},
        {"method": "PUT", "path": "/Users", "data": user("a@example.com")},
    ],
)
def test_invalid_operations_fail_alone(api, operation):
    response = api.post("/Bulk", bulk(operation, post_user("fine", "fine@example.com")))
    results = response.json["Operations"]
    assert results[0]["status"] == "400"
    assert results[0]["response"]["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert results[1]["status"] == "201"


def test_a_failed_operation_leaves_nothing_behind(api, store):
    response = api.post(
        "/Bulk",
        bulk(
            post_user("ada", "ada@example.com"),
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": {
                    "displayName": "G",
                    "members": [{"value": "bulkId:ada"}, {"value": "ghost"}],
                },
            },
        ),
    )
    assert [result["status"] for result in response.json["Operations"]] == ["201", "400"]
    assert store.resources[ResourceKind.GROUP] == {}


def test_an_operation_the_database_fails_answers_503_and_the_others_carry_on(
    scim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deadlock PostgreSQL broke, or any database failure of one operation, is 503: retry."""
    idp = Idp(scim)
    ada, grace = idp.user("ada@msp.example"), idp.user("grace@msp.example")
    replace = DirectoryStore.replace

    def failing_for_ada(self, kind, resource_id, *args, **kwargs):
        if resource_id == ada:
            raise OperationalError("UPDATE", {}, Exception("deadlock detected"))
        return replace(self, kind, resource_id, *args, **kwargs)

    monkeypatch.setattr(DirectoryStore, "replace", failing_for_ada)
    title = {"op": "replace", "path": "title", "value": "Engineer"}
    response = scim.post(
        "/Bulk",
        json=bulk(
            {"method": "PATCH", "path": f"/Users/{ada}", "data": patch_op(title)},
            {"method": "PATCH", "path": f"/Users/{grace}", "data": patch_op(title)},
        ),
    )

    assert response.status_code == 200
    failed, done = response.json["Operations"]
    assert (failed["status"], failed["response"]["status"]) == ("503", "503")
    assert done["status"] == "200"
    assert scim.get(f"/Users/{grace}").json["title"] == "Engineer"
    assert "title" not in scim.get(f"/Users/{ada}").json


def test_a_bulk_past_its_deadline_answers_503_and_keeps_nothing(
    scim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database stop at the deadline ends the whole Bulk: on SQLite it rolled back all of it."""
    idp = Idp(scim)
    ada, grace = idp.user("ada@msp.example"), idp.user("grace@msp.example")
    replace = DirectoryStore.replace

    def past_the_deadline_for_ada(self, kind, resource_id, *args, **kwargs):
        if resource_id == ada:
            Deadline.start(0)  # the request's deadline has passed; its teardown ends it
            raise OperationalError("UPDATE", {}, Exception("interrupted"))
        return replace(self, kind, resource_id, *args, **kwargs)

    monkeypatch.setattr(DirectoryStore, "replace", past_the_deadline_for_ada)
    title = {"op": "replace", "path": "title", "value": "Engineer"}
    response = scim.post(
        "/Bulk",
        json=bulk(
            {"method": "PATCH", "path": f"/Users/{grace}", "data": patch_op(title)},
            {"method": "PATCH", "path": f"/Users/{ada}", "data": patch_op(title)},
        ),
    )

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert "title" not in scim.get(f"/Users/{grace}").json
