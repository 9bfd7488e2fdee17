"""Users over the SCIM blueprint: status codes, ETags, projection and what is never stored."""

import pytest

from scim.backend import ResourceKind
from tests.fake_backend import patch_op, user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def test_create_answers_201_with_location_etag_and_the_user(api):
    response = api.post("/Users", user("ada@example.com", displayName="Ada"))
    assert response.status_code == 201
    assert response.content_type == "application/scim+json"
    body = response.json
    assert response.headers["Location"] == f"http://localhost/scim/v2/Users/{body['id']}"
    assert body["meta"]["location"] == response.headers["Location"]
    assert body["meta"]["resourceType"] == "User"
    assert response.headers["ETag"] == body["meta"]["version"]
    assert response.headers["ETag"].startswith('W/"')
    assert body["userName"] == "ada@example.com"


def test_okta_create_with_password_groups_and_meta_stores_and_returns_no_password(api, store):
    response = api.post(
        "/Users",
        user(
            "ada@example.com",
            password="q7#Lm2vX",
            groups=[],
            meta={"resourceType": "User", "created": "not a date"},
            id="client-chosen",
        ),
    )
    assert response.status_code == 201
    assert "password" not in response.json
    assert response.json["id"] != "client-chosen"
    stored = next(iter(store.resources[ResourceKind.USER].values()))
    assert "password" not in stored.document
    assert "groups" not in stored.document


def test_get_unknown_user_is_404_error_document(api):
    response = api.get("/Users/nope")
    assert response.status_code == 404
    assert response.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert response.json["status"] == "404"
    assert response.json["detail"]


def test_duplicate_username_is_409_uniqueness_case_insensitively(api):
    api.post("/Users", user("ada.king@contoso.example"))
    response = api.post("/Users", user("ADA.KING@CONTOSO.EXAMPLE"))
    assert response.status_code == 409
    assert response.json["scimType"] == "uniqueness"
    assert response.json["status"] == "409"


def test_missing_username_is_400_invalid_value(api):
    response = api.post("/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"


def test_unknown_attributes_are_ignored_not_refused(api, store):
    response = api.post(
        "/Users",
        user("ada@example.com", shoeSize=42, name={"givenName": "Ada", "nickname2": "x"}),
    )
    assert response.status_code == 201
    assert "shoeSize" not in response.json
    assert response.json["name"] == {"givenName": "Ada"}
    document = store.resources[ResourceKind.USER][response.json["id"]].document
    assert "shoeSize" not in document


def test_a_body_without_username_is_400_even_with_unknown_attributes(api):
    response = api.post("/Users", {"not": "a scim resource"})
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"


def test_emails_in_internal_and_special_use_domains_are_accepted(api):
    response = api.post(
        "/Users",
        user(
            "ada@corp.local",
            emails=[{"value": "ada@corp.local", "type": "work"}, {"value": "ada@x.test"}],
        ),
    )
    assert response.status_code == 201
    assert [email["value"] for email in response.json["emails"]] == ["ada@corp.local", "ada@x.test"]


def test_manager_without_ref_is_accepted(api):
    manager = api.post("/Users", user("boss@example.com")).json["id"]
    response = api.post(
        "/Users",
        user(
            "ada@example.com",
            **{ENTERPRISE: {"manager": {"value": manager}}},
            schemas=["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        ),
    )
    assert response.status_code == 201
    assert response.json[ENTERPRISE]["manager"]["value"] == manager


def test_nul_character_is_refused_before_the_backend(api, store):
    response = api.post("/Users", user("ada\u0000@example.com"))
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
    assert not any(call[0] == "create" for call in store.calls)


def test_put_replaces_and_answers_200_ignoring_meta_and_groups(api):
    created = api.post("/Users", user("ada@example.com", title="Countess")).json
    replacement = {**created, "displayName": "Ada Lovelace", "groups": [{"value": "g"}]}
    del replacement["title"]
    response = api.put(f"/Users/{created['id']}", replacement)
    assert response.status_code == 200
    assert response.json["displayName"] == "Ada Lovelace"
    assert "title" not in response.json
    assert response.headers["ETag"] != created["meta"]["version"]


def test_put_with_another_id_in_the_body_is_refused(api):
    created = api.post("/Users", user("ada@example.com")).json
    response = api.put(f"/Users/{created['id']}", user("ada@example.com", id="someone-else"))
    assert response.status_code == 400
    assert response.json["scimType"] == "mutability"


def test_put_on_unknown_user_is_404(api):
    assert api.put("/Users/nope", user("ada@example.com")).status_code == 404


def test_delete_answers_204_then_404(api, store):
    created = api.post("/Users", user("ada@example.com")).json
    response = api.delete(f"/Users/{created['id']}")
    assert response.status_code == 204
    assert response.data == b""
    assert api.get(f"/Users/{created['id']}").status_code == 404
    assert api.delete(f"/Users/{created['id']}").status_code == 404


def test_if_none_match_answers_304_when_unchanged(api):
    created = api.post("/Users", user("ada@example.com"))
    etag = created.headers["ETag"]
    path = f"/Users/{created.json['id']}"
    not_modified = api.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.headers["ETag"] == etag
    assert api.get(path, headers={"If-None-Match": 'W/"other"'}).status_code == 200


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_stale_if_match_is_412_and_writes_nothing(api, store, method):
    created = api.post("/Users", user("ada@example.com")).json
    path = f"/Users/{created['id']}"
    body = {
        "put": user("ada@example.com", title="x"),
        "patch": patch_op({"op": "replace", "path": "title", "value": "x"}),
        "delete": None,
    }[method]
    kwargs = {"json": body} if body is not None else {}
    response = getattr(api, method)(path, headers={"If-Match": 'W/"999"'}, **kwargs)
    assert response.status_code == 412
    assert response.json["status"] == "412"
    assert "title" not in api.get(path).json


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_current_if_match_lets_the_write_through(api, method):
    created = api.post("/Users", user("ada@example.com"))
    path = f"/Users/{created.json['id']}"
    body = {
        "put": user("ada@example.com", title="x"),
        "patch": patch_op({"op": "replace", "path": "title", "value": "x"}),
        "delete": None,
    }[method]
    kwargs = {"json": body} if body is not None else {}
    response = getattr(api, method)(path, headers={"If-Match": created.headers["ETag"]}, **kwargs)
    assert response.status_code in (200, 204)


def test_if_match_star_matches_any_version(api):
    created = api.post("/Users", user("ada@example.com")).json
    response = api.delete(f"/Users/{created['id']}", headers={"If-Match": "*"})
    assert response.status_code == 204


def test_attributes_and_excluded_attributes_project_every_read(api):
    created = api.post("/Users", user("ada@example.com", title="Countess", displayName="Ada")).json
    path = f"/Users/{created['id']}"
    only = api.get(path + "?attributes=userName").json
    assert set(only) == {"schemas", "id", "userName"}
    without = api.get(path + "?excludedAttributes=title,displayName").json
    assert "title" not in without
    assert "displayName" not in without
    assert "userName" in without
    put = api.put(path + "?attributes=title", user("ada@example.com", title="Lady")).json
    assert set(put) == {"schemas", "id", "title"}
    posted = api.post("/Users?attributes=userName", user("grace@example.com")).json
    assert set(posted) == {"schemas", "id", "userName"}


def test_excluding_groups_does_not_load_memberships(api, store):
    created = api.post("/Users", user("ada@example.com")).json
    api.get(f"/Users/{created['id']}?excludedAttributes=groups")
    assert store.calls[-1] == ("get", ResourceKind.USER, created["id"], False)


def test_user_groups_are_returned_with_refs(api):
    ada = api.post("/Users", user("ada@example.com")).json["id"]
    owners = api.post("/Groups", {"displayName": "Owners", "members": [{"value": ada}]}).json
    groups = api.get(f"/Users/{ada}").json["groups"]
    assert groups == [
        {
            "value": owners["id"],
            "$ref": f"http://localhost/scim/v2/Groups/{owners['id']}",
            "display": "Owners",
            "type": "direct",
        }
    ]


def test_commit_once_per_write_and_rollback_on_failure(api, store):
    api.post("/Users", user("ada@example.com"))
    assert store.commits == 1
    api.post("/Users", user("ada@example.com"))
    assert store.commits == 1
