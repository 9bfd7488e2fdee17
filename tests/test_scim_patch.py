"""User PATCH as Okta and Entra ID send it (RFC 7644 section 3.5.2; samples in tests/replay/)."""

import copy
import json

import pytest
from scim2_models import InvalidPathException

from scim.backend import ResourceKind
from scim.extensions import DEFAULT_SCHEMAS
from scim.operations import _SharedPatches, prepare_patch
from scim.settings import ScimSettings
from tests.fake_backend import patch_op
from tests.idp_samples import sample_body

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def ada(api):
    """Entra's creation of Ada (entra-09), as recorded."""
    response = api.post("/Users", sample_body("entra-09"))
    assert response.status_code == 201
    return response.json["id"]


def patched(api, user_id, body):
    response = api.patch(f"/Users/{user_id}", body)
    assert response.status_code == 200, response.json
    assert response.json == api.get(f"/Users/{user_id}").json
    return response.json


def test_okta_deactivate_and_reactivate_without_path(api, ada):
    assert patched(api, ada, sample_body("okta-17"))["active"] is False
    assert patched(api, ada, sample_body("okta-20"))["active"] is True


@pytest.mark.parametrize(("step", "active"), [("entra-29", False), ("entra-32", True)])
def test_entra_string_booleans(api, ada, step, active):
    assert patched(api, ada, sample_body(step))["active"] is active


def test_entra_lowercase_op_with_json_boolean(api, ada):
    assert patched(api, ada, sample_body("entra-33"))["active"] is False


def test_entra_capitalized_ops_on_filtered_and_sub_attribute_paths(api, ada):
    body = patched(api, ada, sample_body("entra-14"))
    assert body["emails"][0]["value"] == "ada.king@contoso.example"
    assert body["emails"][0]["type"] == "work"
    assert body["name"]["familyName"] == "King"


def test_entra_add_on_a_filter_matching_nothing_creates_the_element(api, ada):
    body = patched(api, ada, sample_body("entra-16"))
    assert body["title"] == "Analyst"
    assert {"type": "mobile", "value": "+44 7700 900123"} in body["phoneNumbers"]


def test_entra_urn_qualified_extension_paths(api, ada):
    body = patched(api, ada, sample_body("entra-18"))
    assert body["addresses"][0]["streetAddress"] == "10 Downing Street"
    assert body["addresses"][0]["locality"] == "Westminster"
    assert body[ENTERPRISE]["department"] == "Difference Engines"
    assert body[ENTERPRISE]["employeeNumber"] == "1815-A"
    assert body["externalId"] == "ada.king"


def test_entra_no_path_value_whose_keys_are_paths(api, ada, store):
    body = patched(api, ada, sample_body("entra-36"))
    assert body["displayName"] == "Ada, Countess of Lovelace"
    assert body["name"]["givenName"] == "Augusta Ada"
    assert body["name"]["familyName"] == "King-Noel"
    assert body[ENTERPRISE]["employeeNumber"] == "1815-B"
    assert body["emails"][0]["value"] == "countess@contoso.example"
    document = store.resources[ResourceKind.USER][ada].document
    assert "name.givenName" not in document


def test_entra_username_rename_rechecks_uniqueness(api, ada):
    assert patched(api, ada, sample_body("entra-38"))["userName"] == "ada.king@contoso.example"
    other = api.post("/Users", {"userName": "someone@contoso.example"}).json["id"]
    clash = api.patch(
        f"/Users/{other}",
        patch_op({"op": "Replace", "path": "userName", "value": "ADA.KING@contoso.example"}),
    )
    assert clash.status_code == 409
    assert clash.json["scimType"] == "uniqueness"


def test_entra_stringified_app_role(api, ada):
    body = patched(api, ada, sample_body("entra-42"))
    assert body["roles"] == [{"value": "hub-admin", "display": "Hub Admin"}]


def test_entra_manager_set_as_a_bare_string_then_removed(api, ada):
    boss = api.post("/Users", sample_body("entra-10")).json["id"]
    body = patched(
        api,
        ada,
        patch_op({"op": "Add", "path": f"{ENTERPRISE}:manager", "value": boss}),
    )
    assert body[ENTERPRISE]["manager"]["value"] == boss
    body = patched(
        api,
        ada,
        patch_op({"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": ""}),
    )
    assert "manager" not in body[ENTERPRISE]
    patched(api, ada, patch_op({"op": "Add", "path": f"{ENTERPRISE}:manager", "value": boss}))
    body = patched(api, ada, patch_op({"op": "Remove", "path": f"{ENTERPRISE}:manager"}))
    assert "manager" not in body[ENTERPRISE]


def test_manager_as_a_bare_string_in_a_no_path_value(api, ada):
    boss = api.post("/Users", sample_body("entra-10")).json["id"]
    body = patched(api, ada, patch_op({"op": "replace", "value": {f"{ENTERPRISE}:manager": boss}}))
    assert body[ENTERPRISE]["manager"]["value"] == boss


def test_id_meta_groups_and_password_in_a_value_are_ignored(api, ada, store):
    body = patched(
        api,
        ada,
        patch_op(
            {
                "op": "replace",
                "value": {
                    "id": ada,
                    "meta": {"resourceType": "User"},
                    "groups": [],
                    "password": "secret",
                    "nickName": "Ada",
                },
            }
        ),
    )
    assert body["nickName"] == "Ada"
    assert "password" not in body
    assert "password" not in store.resources[ResourceKind.USER][ada].document


def test_unknown_attributes_in_a_value_are_ignored(api, ada):
    body = patched(
        api, ada, patch_op({"op": "replace", "value": {"shoeSize": 42, "nickName": "Ada"}})
    )
    assert body["nickName"] == "Ada"
    assert "shoeSize" not in body


def test_password_by_path_is_never_stored(api, ada, store):
    api.patch(f"/Users/{ada}", patch_op({"op": "replace", "path": "password", "value": "s3cret"}))
    assert "password" not in store.resources[ResourceKind.USER][ada].document


def test_all_operations_apply_or_none(api, ada):
    before = api.get(f"/Users/{ada}").json
    response = api.patch(
        f"/Users/{ada}",
        patch_op(
            {"op": "replace", "path": "title", "value": "Countess"},
            {"op": "replace", "path": "userName", "value": None},
        ),
    )
    assert response.status_code == 400
    assert api.get(f"/Users/{ada}").json == before


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "remove"}, "noTarget"),
        ({"op": "replace", "path": "nickname[", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "shoeSize", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "id", "value": "x"}, "mutability"),
        ({"op": "add", "path": "groups", "value": [{"value": "g"}]}, "mutability"),
        ({"op": "replace", "path": "active", "value": "maybe"}, "invalidValue"),
        ({"op": "replace", "path": 'emails[type eq "home"].display', "value": "x"}, None),
    ],
)
def test_bad_user_patches(api, ada, operation, scim_type):
    response = api.patch(f"/Users/{ada}", patch_op(operation))
    if scim_type is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert response.json["scimType"] == scim_type


def test_patch_without_operations_is_400(api, ada):
    response = api.patch(
        f"/Users/{ada}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}
    )
    assert response.status_code == 400


def test_patch_with_a_wrong_schema_is_400_invalid_syntax(api, ada):
    response = api.patch(
        f"/Users/{ada}",
        {"schemas": ["urn:x"], "Operations": [{"op": "add", "path": "title", "value": "x"}]},
    )
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidSyntax"


def test_a_concurrent_writer_makes_the_patch_retry_on_fresh_data(api, ada, store):
    store.fail_next_replace = 2
    response = api.patch(f"/Users/{ada}", patch_op({"op": "add", "path": "title", "value": "x"}))
    assert response.status_code == 200
    assert response.json["title"] == "x"
    assert len([call for call in store.calls if call[0] == "replace"]) == 3


def test_a_patch_losing_every_race_answers_412(api, ada, store):
    store.fail_next_replace = 10
    response = api.patch(f"/Users/{ada}", patch_op({"op": "add", "path": "title", "value": "x"}))
    assert response.status_code == 412
    assert "title" not in api.get(f"/Users/{ada}").json


def test_a_client_if_match_is_not_retried(api, ada, store):
    etag = api.get(f"/Users/{ada}").headers["ETag"]
    store.fail_next_replace = 1
    response = api.patch(
        f"/Users/{ada}",
        patch_op({"op": "add", "path": "title", "value": "x"}),
        headers={"If-Match": etag},
    )
    assert response.status_code == 412


class TestSharedValidation:
    """A PatchOp body sent again is validated once per process, and answers as the first did."""

    def entra_deactivation(self):
        return {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
        }

    def test_an_identical_body_reuses_the_validated_operations(self):
        first = prepare_patch(ResourceKind.USER, "a", self.entra_deactivation(), ScimSettings())
        again = prepare_patch(ResourceKind.USER, "b", self.entra_deactivation(), ScimSettings())
        assert again.operations is first.operations
        assert (again.resource_id, first.resource_id) == ("b", "a")

    @pytest.mark.parametrize(
        "value",
        [[{"value": "ada@example.com", "type": "work"}], {"value": "ada@example.com"}],
        ids=["list", "object"],
    )
    def test_a_body_with_a_structured_value_is_validated_each_time(self, value):
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "emails", "value": value}],
        }
        first = prepare_patch(ResourceKind.USER, "a", copy.deepcopy(body), ScimSettings())
        again = prepare_patch(ResourceKind.USER, "a", copy.deepcopy(body), ScimSettings())
        assert again.operations is not first.operations

    def test_a_refused_body_is_refused_again(self):
        body = self.entra_deactivation()
        body["Operations"][0]["path"] = "nosuchattribute"
        for _ in range(2):
            with pytest.raises(InvalidPathException):
                prepare_patch(ResourceKind.USER, "a", copy.deepcopy(body), ScimSettings())

    def test_each_resource_model_validates_its_own(self):
        user = prepare_patch(ResourceKind.USER, "a", self.entra_deactivation(), ScimSettings())
        with pytest.raises(InvalidPathException):
            prepare_patch(ResourceKind.GROUP, "g", self.entra_deactivation(), ScimSettings())
        assert prepare_patch(ResourceKind.USER, "a", self.entra_deactivation(), ScimSettings())
        assert user.operations is not None

    def test_only_the_latest_bodies_are_kept(self):
        shared = _SharedPatches(2)
        model = DEFAULT_SCHEMAS.model(ResourceKind.USER)

        def validated(title):
            body = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": title}],
            }
            return shared.validated(model, json.dumps(body), body)

        kept = validated("a")
        validated("b")
        assert validated("a") is kept  # used again: now the latest
        validated("c")  # "b", the oldest, goes
        assert validated("a") is kept
        second = validated("b")  # "c" goes
        assert validated("b") is second
        validated("c")  # "a" goes
        assert validated("a") is not kept

    def test_the_same_deactivation_serves_two_users(self, api, ada):
        other = api.post("/Users", {**sample_body("entra-09"), "userName": "grace@example.com"})
        assert other.status_code == 201
        for user_id in (ada, other.json["id"]):
            assert patched(api, user_id, self.entra_deactivation())["active"] is False
        assert api.get(f"/Users/{ada}").json["userName"] != other.json["userName"]
