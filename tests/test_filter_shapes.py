"""A filter parsed from its shape is the filter scim2-models parses (RFC 7644 section 3.4.2.2).

Each text is parsed both ways: the trees must be equal, and a text one way
refuses the other refuses with the same error.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from scim2_models import Group, Resource, SCIMException, ScimFilter

from scim.backend import ResourceKind
from scim.extensions import served_schemas
from scim.filter_shapes import _comparison_shape, parse_filter_text
from scim.resources import MODELS

USER = MODELS[ResourceKind.USER]
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CUSTOM = "urn:ietf:params:scim:schemas:extension:Acme:2.0:User"


def custom_user_model() -> type[Resource[Any]]:
    declared = served_schemas(
        [
            {
                "id": CUSTOM,
                "name": "Acme",
                "attributes": [
                    {"name": "badge", "type": "string", "multiValued": False},
                    {"name": "floors", "type": "integer", "multiValued": True},
                    {"name": "hired", "type": "dateTime", "multiValued": False},
                ],
            }
        ]
    )
    return declared.model(ResourceKind.USER)


def outcome(parse: Any) -> tuple[str, Any]:
    try:
        return "tree", parse()
    except SCIMException as error:
        return type(error).__name__, error.detail
    except ValueError as error:
        return type(error).__name__, str(error)


def assert_same(model: type[Resource[Any]], text: str) -> None:
    expected = outcome(lambda: ScimFilter[model](text).ast)  # type: ignore[valid-type]
    assert outcome(lambda: parse_filter_text(model, text)) == expected, text


USER_FILTERS = [
    'userName eq "ada@example.com"',
    'userName eq "ADA@example.com"',
    'USERNAME EQ "ada"',
    'userName   eq   "ada"   ',
    'userName eq "ada"\n',
    'userName eq "ada"\t\r\n ',
    'userName eq "ada"\v',
    ' userName eq "ada"',
    'userName eq ""',
    'userName eq "a\\"b"',
    'userName eq "a\\\\b"',
    'userName eq "a\\/b\\b\\f\\n\\r\\t"',
    'userName eq "\\u00e9\\u0041"',
    'userName eq "\\u00E9"',
    'userName eq "\\u00e"',
    'userName eq "\\x41"',
    'userName eq "a\\"',
    'userName eq "a\nb"',
    'userName eq "a\x00b"',
    'userName eq "a\x1fb"',
    'userName eq "a\x7fb"',
    'userName eq "日本語 ✓ 🙂"',
    'userName eq "\ud83d"',
    'userName eq "a"b"',
    'userName eq "a" "b"',
    'userName eq "a" and active eq true',
    'userName eq "a" or userName eq "b"',
    'not (userName eq "a")',
    '(userName eq "a")',
    "userName eq 'a'",
    "userName eq a",
    'userName "a"',
    'eq "a"',
    '"a"',
    'userName eq "a',
    'userName eq a"',
    "userName eq 12",
    "userName eq null",
    "userName eq true",
    "userName pr",
    'userName ne "a"',
    'userName co "a"',
    'userName sw "a"',
    'userName ew "a"',
    'userName gt "a"',
    'userName le "a"',
    'userName xx "a"',
    'userName never "a"',
    'externalId eq "00u1"',
    'id eq "2819c223-7f76-453a-919d-413861904646"',
    'displayName eq "Babs"',
    'name.familyName eq "Jensen"',
    'name eq "Jensen"',
    'emails eq "a@example.com"',
    'emails.value eq "a@example.com"',
    'emails.type eq "work"',
    'emails[type eq "work"]',
    'emails[type eq "work"].value eq "a@example.com"',
    'emails[type eq "work" and value co "@x"]',
    'active eq "true"',
    'active eq ""',
    'meta.created gt "2011-05-13T04:42:34Z"',
    'meta.created gt ""',
    'meta.lastModified eq "not a date"',
    'meta.resourceType eq "User"',
    'meta.location eq "https://x"',
    'groups.value eq "abc"',
    'groups eq "abc"',
    'members.value eq "abc"',
    'x509Certificates.value eq "AAAA"',
    'x509Certificates.value eq "not base64!"',
    'photos.value eq "https://example.com/a.png"',
    'photos.value eq "not a url"',
    'profileUrl eq "not a url"',
    'locale eq "fr-FR"',
    'timezone eq "Europe/Paris"',
    'password eq "secret"',
    'shoeSize eq "44"',
    f'{CORE}:userName eq "ada"',
    f'{CORE.upper()}:USERNAME eq "ada"',
    f'{ENTERPRISE}:department eq "Tours"',
    f'{ENTERPRISE}:employeeNumber eq "701984"',
    f'{ENTERPRISE}:manager.value eq "26118915"',
    f'{ENTERPRISE}:manager eq "26118915"',
    f"{ENTERPRISE}:department pr",
    'urn:unknown:schema:userName eq "ada"',
    "userName eq " + '"' + "a" * 2000 + '"',
]


@pytest.mark.parametrize("text", USER_FILTERS)
def test_user_filters(text: str) -> None:
    assert_same(USER, text)


@pytest.mark.parametrize(
    "text",
    [
        'displayName eq "Tour Guides"',
        'displayName eq "tour guides"  ',
        'externalId eq "grp-1"',
        'members.value eq "abc"',
        'members eq "abc"',
        'members[value eq "abc"]',
        'userName eq "ada"',
        "displayName eq 3",
    ],
)
def test_group_filters(text: str) -> None:
    assert_same(Group, text)


@pytest.mark.parametrize(
    "text",
    [
        f'{CUSTOM}:badge eq "B-7"',
        f'{CUSTOM}:floors eq "3"',
        f'{CUSTOM}:hired gt "2020-01-01T00:00:00Z"',
        f'{CUSTOM}:hired gt "yesterday"',
        'userName eq "ada"',
    ],
)
def test_filters_on_a_declared_extension(text: str) -> None:
    assert_same(custom_user_model(), text)


def test_random_strings_in_every_shape() -> None:
    """Strings of quotes, escapes, controls and astral characters, in lookups and others."""
    alphabet = ['"', "\\", "\\u", "u", "0", "a", "é", " ", "\n", "\x01", "/", "🙂", "\\n", "'"]
    shapes = [
        'userName eq "{}"',
        'externalId eq "{}"  ',
        'emails co "{}"',
        'meta.created ge "{}"',
        'active eq "{}"',
        'userName eq "{}" and active eq true',
        '{}userName eq "x"',
    ]
    generator = random.Random(7643)
    for _ in range(1500):
        value = "".join(generator.choice(alphabet) for _ in range(generator.randrange(6)))
        assert_same(USER, generator.choice(shapes).format(value))


def test_a_lookup_is_parsed_from_its_shape() -> None:
    """Not only equal: the lookups IdPs send are the ones taken from a shape."""
    assert _comparison_shape(USER, 'userName eq ""') is not None
    assert _comparison_shape(USER, 'externalId eq ""') is not None
    assert _comparison_shape(Group, 'displayName eq ""') is not None
    assert _comparison_shape(USER, 'meta.created gt ""') is None
    assert _comparison_shape(USER, 'active eq ""') is None
    assert _comparison_shape(USER, 'shoeSize eq ""') is None
