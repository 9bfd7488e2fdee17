"""What an attribute path designates, derived from scim2-models (RFC 7643 sections 2 and 7)."""

from __future__ import annotations

from typing import Any

import pytest
from scim2_models import EnterpriseUser, Group, User
from scim2_models.path import AttrPath

from scim.attributes import ScimType, iter_leaf_values, resolve_attribute, resolve_sub_attribute

UserModel: Any = User[EnterpriseUser]
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.mark.parametrize(
    ("path", "canonical", "scim_type", "case_exact", "plural"),
    [
        ("userName", "username", ScimType.string, False, False),
        ("USERNAME", "username", ScimType.string, False, False),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "username",
            ScimType.string,
            False,
            False,
        ),
        ("id", "id", ScimType.string, True, False),
        ("externalId", "externalid", ScimType.string, True, False),
        ("name.givenName", "name.givenname", ScimType.string, False, False),
        ("emails.value", "emails.value", ScimType.string, False, True),
        ("emails.primary", "emails.primary", ScimType.boolean, False, True),
        ("active", "active", ScimType.boolean, False, False),
        ("meta.created", "meta.created", ScimType.date_time, False, False),
        ("meta.lastModified", "meta.lastmodified", ScimType.date_time, False, False),
        ("profileUrl", "profileurl", ScimType.reference, True, False),
        ("x509Certificates.value", "x509certificates.value", ScimType.binary, True, True),
        ("groups.value", "groups.value", ScimType.string, True, True),
        ("schemas", "schemas", ScimType.string, False, True),
        (
            f"{ENTERPRISE}:department",
            f"{ENTERPRISE.lower()}:department",
            ScimType.string,
            False,
            False,
        ),
        (
            f"{ENTERPRISE.upper()}:manager.value",
            f"{ENTERPRISE.lower()}:manager.value",
            ScimType.string,
            True,
            False,
        ),
    ],
)
def test_user_attributes(
    path: str, canonical: str, scim_type: ScimType, case_exact: bool, plural: bool
) -> None:
    info = resolve_attribute(UserModel, path)
    assert info is not None
    assert (info.path, info.type, info.case_exact, info.is_plural) == (
        canonical,
        scim_type,
        case_exact,
        plural,
    )


def test_attr_path_nodes_resolve_like_strings() -> None:
    node = AttrPath("emails", "type")
    assert resolve_attribute(UserModel, node) == resolve_attribute(UserModel, "emails.type")
    extension = AttrPath("department", uri=ENTERPRISE)
    info = resolve_attribute(UserModel, extension)
    assert info is not None
    assert info.path.endswith(":department")


def test_complex_attributes_list_their_sub_attributes() -> None:
    emails = resolve_attribute(UserModel, "emails")
    assert emails is not None
    assert emails.is_complex
    assert emails.multi_valued
    assert set(emails.sub_attributes) == {
        "emails.value",
        "emails.display",
        "emails.type",
        "emails.primary",
    }
    value = resolve_attribute(UserModel, "emails.value")
    assert value is not None
    assert value.in_multi_valued
    assert value.parent == "emails"


def test_comparison_on_a_multi_valued_complex_attribute_means_its_value() -> None:
    info = resolve_attribute(UserModel, "emails", for_comparison=True)
    assert info is not None
    assert info.path == "emails.value"
    member = resolve_attribute(Group, "members", for_comparison=True)
    assert member is not None
    assert member.path == "members.value"
    assert member.case_exact
    assert resolve_attribute(UserModel, "name", for_comparison=True) is not None


@pytest.mark.parametrize(
    "path",
    [
        "shoeSize",
        "emails.nope",
        "urn:example:unknown:thing",
        "userName.x",
        'emails[type eq "x"]',
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "",
        "a b",
    ],
)
def test_unknown_attributes_resolve_to_none(path: str) -> None:
    assert resolve_attribute(UserModel, path) is None


def test_group_attributes() -> None:
    display = resolve_attribute(Group, "displayName")
    assert display is not None
    assert display.path == "displayname"
    assert not display.case_exact
    assert resolve_attribute(Group, "userName") is None


def test_sub_attributes_inside_brackets() -> None:
    emails = resolve_attribute(UserModel, "emails")
    assert emails is not None
    sub = resolve_sub_attribute(UserModel, emails, AttrPath("TYPE"))
    assert sub is not None
    assert sub.path == "emails.type"
    assert resolve_sub_attribute(UserModel, emails, AttrPath("type", "x")) is None
    assert resolve_sub_attribute(UserModel, emails, AttrPath("type", uri=ENTERPRISE)) is None
    schemas = resolve_attribute(UserModel, "schemas")
    assert schemas is not None
    assert resolve_sub_attribute(UserModel, schemas, AttrPath("value")) == schemas


def test_comparison_keys_follow_case_exactness() -> None:
    user_name = resolve_attribute(UserModel, "userName")
    external_id = resolve_attribute(UserModel, "externalId")
    assert user_name is not None
    assert external_id is not None
    assert user_name.comparison_key("BJensen") == "bjensen"
    assert external_id.comparison_key("BJensen") == "BJensen"
    # NFC: a decomposed "é" compares equal to the composed one.
    assert user_name.comparison_key("Jose\u0301") == user_name.comparison_key("JOSÉ")


def test_leaf_values_of_an_okta_user() -> None:
    document = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": None},
        "emails": [
            {"value": "ada@example.com", "type": "work", "primary": True},
            {"value": "ada@home.org"},
        ],
        ENTERPRISE.lower(): {"department": "Math", "manager": {"value": "m-1"}},
        "customThing": {"x": 1},
        "active": True,
    }
    leaves = [
        (leaf.path, leaf.element, leaf.value) for leaf in iter_leaf_values(UserModel, document)
    ]
    assert leaves == [
        ("schemas", 0, "urn:ietf:params:scim:schemas:core:2.0:User"),
        ("schemas", 1, ENTERPRISE),
        ("username", 0, "ada@example.com"),
        ("name.givenname", 0, "Ada"),
        ("emails.value", 0, "ada@example.com"),
        ("emails.type", 0, "work"),
        ("emails.primary", 0, True),
        ("emails.value", 1, "ada@home.org"),
        (f"{ENTERPRISE.lower()}:department", 0, "Math"),
        (f"{ENTERPRISE.lower()}:manager.value", 0, "m-1"),
        ("active", 0, True),
    ]
