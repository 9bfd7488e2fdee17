"""What Okta and Entra ID send, rewritten into what scim2-models validates."""

import pytest
from scim2_models import InvalidSyntaxException, InvalidValueException

from scim.backend import ResourceKind
from scim.dialects import normalize_patch, normalize_resource, require_object

USER = ResourceKind.USER
GROUP = ResourceKind.GROUP
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MICROSOFT_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def operations(body):
    return body["Operations"]


def test_okta_user_body_loses_password_groups_meta_and_id():
    body = normalize_resource(
        USER,
        {
            "id": "x",
            "userName": "ada",
            "password": "q7#Lm2vX",
            "groups": [],
            "meta": {"resourceType": "User"},
            "Password": "again",
        },
    )
    assert body == {"userName": "ada"}


def test_group_keeps_members_but_drops_unknown_schemas_and_their_attributes():
    body = normalize_resource(
        GROUP,
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", MICROSOFT_GROUP],
            "displayName": "Hub-Admins",
            MICROSOFT_GROUP: {"anything": 1},
            "members": [{"value": "u1"}],
        },
    )
    assert body == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Hub-Admins",
        "members": [{"value": "u1"}],
    }


def test_manager_as_a_bare_id_in_a_body():
    body = normalize_resource(USER, {"userName": "ada", ENTERPRISE: {"manager": "boss"}})
    assert body[ENTERPRISE] == {"manager": {"value": "boss"}}


def test_stringified_roles_are_read_back_as_objects():
    role = '{"id":"06b0","value":"hub-admin","displayName":"Hub Admin"}'
    body = normalize_resource(
        USER, {"userName": "ada", "roles": [{"value": role, "primary": True}]}
    )
    assert body["roles"] == [{"value": "hub-admin", "display": "Hub Admin", "primary": True}]
    untouched = normalize_resource(USER, {"userName": "ada", "roles": [{"value": "{not json"}]})
    assert untouched["roles"] == [{"value": "{not json"}]


def test_manager_patch_forms():
    path = f"{ENTERPRISE}:manager"
    body = normalize_patch(
        USER,
        {
            "Operations": [
                {"op": "Add", "path": path, "value": "boss"},
                {"op": "Replace", "path": path, "value": ""},
                {"op": "Remove", "path": path, "value": [{"value": "boss"}]},
                {"op": "replace", "value": {path: "boss"}},
            ]
        },
    )
    assert operations(body) == [
        {"op": "Add", "path": path, "value": {"value": "boss"}},
        {"op": "remove", "path": path},
        {"op": "remove", "path": path},
        {"op": "replace", "value": {path: {"value": "boss"}}},
    ]


def test_no_path_value_drops_read_only_echoes():
    body = normalize_patch(
        GROUP,
        {"Operations": [{"op": "replace", "value": {"id": "g1", "displayName": "EMEA"}}]},
    )
    assert operations(body) == [{"op": "replace", "value": {"displayName": "EMEA"}}]


def test_paths_are_trimmed():
    body = normalize_patch(USER, {"Operations": [{"op": "add", "path": " title ", "value": "x"}]})
    assert operations(body)[0]["path"] == "title"


@pytest.mark.parametrize("payload", [[], "x", None, 3])
def test_bodies_must_be_objects(payload):
    with pytest.raises(InvalidSyntaxException):
        require_object(payload, "resource")


def test_nul_characters_are_refused_anywhere():
    with pytest.raises(InvalidValueException):
        require_object({"name": {"givenName": ["a\x00"]}}, "resource")
    with pytest.raises(InvalidValueException):
        require_object({"key\x00": 1}, "resource")
