"""The SQL filter agrees with scim2-models' own evaluator, ``ScimFilter.match``.

Hypothesis writes filters (every operator, and/or/not, value paths, the
enterprise extension) over a varied staff directory; for each one, the users
the database returns must be exactly those ``ScimFilter.match`` accepts on
the same documents. scim2-models is the reference reading of RFC 7644
section 3.4.2.2 this store follows.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scim2_models import EnterpriseUser, InvalidFilterException, ScimFilter, User
from sqlalchemy.orm import Session

from connector.directory.store import SqlBackend
from scim.backend import ListQuery, ResourceKind
from scim.matching import matching

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
UserModel: Any = User[EnterpriseUser]

DIRECTORY: list[dict[str, Any]] = [
    {
        "userName": "BJensen",
        "externalId": "okta-1",
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": True,
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
        ENTERPRISE: {"department": "Tours", "employeeNumber": "42"},
    },
    {
        "userName": "jsmith",
        "externalId": "OKTA-2",
        "title": "",
        "active": False,
        "name": {"givenName": "John"},
        "emails": [{"value": "john@home.net", "type": "home", "primary": False}],
        ENTERPRISE: {"department": "board"},
    },
    {
        "userName": "élodie",
        "displayName": "Élodie Ä",
        "nickName": "Lo",
        "emails": [
            {"value": "lo@example.com", "type": "work"},
            {"value": "elodie@example.com", "type": "other", "display": "x"},
        ],
    },
    {"userName": "amy_o%", "title": "CEO", "active": True, "name": {"familyName": "O'Hara"}},
    {"userName": "zed"},
    {
        "userName": "Quinn",
        "externalId": "okta-3",
        "emails": [{"value": "QUINN@EXAMPLE.COM", "type": "Work", "primary": True}],
        ENTERPRISE: {"department": "TOURS", "employeeNumber": "7"},
    },
]

WORDS = [
    "bjensen", "BJENSEN", "jsmith", "zed", "amy_o%", "%", "_", "o'", "ÉLODIE", "élodie",
    "e", "EXAMPLE.COM", "example", "@example.com", "bjensen@example.com", "john@home.net",
    "work", "Work", "home", "other", "tours", "Tours", "board", "42", "7", "okta-1", "OKTA",
    "okta", "Barbara", "jen", "CEO", "ceo", "Tour Guide", "", "x", "Lo", "babs@jensen.org",
]  # fmt: skip

STRING_ATTRIBUTES = [
    "userName", "displayName", "title", "nickName", "externalId", "name.givenName",
    "name.familyName", f"{ENTERPRISE}:department", f"{ENTERPRISE}:employeeNumber",
    "emails.type", "emails.display",
]  # fmt: skip
EMAIL_ATTRIBUTES = ["emails", "emails.value"]
BOOLEAN_ATTRIBUTES = ["active", "emails.primary"]
PRESENT_ATTRIBUTES = [*STRING_ATTRIBUTES, *EMAIL_ATTRIBUTES, *BOOLEAN_ATTRIBUTES, "name",
                      f"{ENTERPRISE}:manager"]  # fmt: skip
OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
EMAIL_WORDS = ["bjensen@example.com", "john@home.net", "lo@example.com", "quinn@example.com",
               "a@b.com", "zz@zz.zz"]  # fmt: skip


def quoted(text: str) -> str:
    return str(ScimFilter.quote(text))


string_comparisons = st.builds(
    lambda attribute, op, word: f"{attribute} {op} {quoted(word)}",
    st.sampled_from(STRING_ATTRIBUTES),
    st.sampled_from(OPERATORS),
    st.sampled_from(WORDS),
)
email_comparisons = st.builds(
    lambda attribute, op, word: f"{attribute} {op} {quoted(word)}",
    st.sampled_from(EMAIL_ATTRIBUTES),
    st.sampled_from(OPERATORS),
    st.sampled_from([*EMAIL_WORDS, "example", "COM", "@home"]),
)
boolean_comparisons = st.builds(
    lambda attribute, op, value: f"{attribute} {op} {'true' if value else 'false'}",
    st.sampled_from(BOOLEAN_ATTRIBUTES),
    st.sampled_from(["eq", "ne"]),
    st.booleans(),
)
presences = st.builds(lambda attribute: f"{attribute} pr", st.sampled_from(PRESENT_ATTRIBUTES))
inner_atoms = st.one_of(
    st.builds(
        lambda sub, op, word: f"{sub} {op} {quoted(word)}",
        st.sampled_from(["type", "display"]),
        st.sampled_from(OPERATORS),
        st.sampled_from(WORDS),
    ),
    st.builds(
        lambda op, word: f"value {op} {quoted(word)}",
        st.sampled_from(OPERATORS),
        st.sampled_from([*EMAIL_WORDS, "example", "@home"]),
    ),
    st.builds(lambda value: f"primary eq {'true' if value else 'false'}", st.booleans()),
    st.builds(lambda sub: f"{sub} pr", st.sampled_from(["type", "value", "primary", "display"])),
)
inner_filters = st.recursive(
    inner_atoms,
    lambda children: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", children, children),
        st.builds(lambda a, b: f"({a}) or ({b})", children, children),
        st.builds(lambda a: f"not ({a})", children),
    ),
    max_leaves=4,
)
value_paths = st.builds(lambda inner: f"emails[{inner}]", inner_filters)
atoms = st.one_of(
    string_comparisons, email_comparisons, boolean_comparisons, presences, value_paths
)
filters = st.recursive(
    atoms,
    lambda children: st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", children, children),
        st.builds(lambda a, b: f"({a}) or ({b})", children, children),
        st.builds(lambda a: f"not ({a})", children),
    ),
    max_leaves=5,
)


@pytest.fixture
def stored(session: Session, org_id: int) -> tuple[SqlBackend, dict[str, Any]]:
    backend = SqlBackend(session, org_id)
    users = {}
    for document in DIRECTORY:
        created = backend.create(ResourceKind.USER, document)
        users[created.id] = UserModel.model_validate(created.document)
    backend.commit()
    return backend, users


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=filters)
def test_sql_agrees_with_scim2_models(stored: tuple[SqlBackend, dict[str, Any]], text: str) -> None:
    backend, users = stored
    try:
        bound = ScimFilter[UserModel](text)
    except InvalidFilterException:
        assume(False)
        raise
    expected = {user_id for user_id, user in users.items() if bound.match(user)}
    page = backend.list(ResourceKind.USER, ListQuery(filter=bound.ast, count=100))
    assert {document["id"] for document in page.resources} == expected, text
    assert page.total == len(expected)


@pytest.mark.parametrize(
    "text",
    [
        'title eq ""',
        "title pr",
        'title ne ""',
        'emails[type eq "work" and not (primary eq true)]',
        "emails[not (display pr)]",
        'emails.type eq "WORK"',
        'userName gt "J"',
        'userName lt "élodie"',
        'displayName sw "élo"',
        f'{ENTERPRISE}:department eq "tours" and not (emails[primary eq true])',
    ],
)
def test_known_edges_agree(stored: tuple[SqlBackend, dict[str, Any]], text: str) -> None:
    backend, users = stored
    bound = ScimFilter[UserModel](text)
    expected = {user_id for user_id, user in users.items() if bound.match(user)}
    page = backend.list(ResourceKind.USER, ListQuery(filter=bound.ast))
    assert {document["id"] for document in page.resources} == expected


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(filters, min_size=1, max_size=3))
def test_conditions_read_once_agree_with_scim2_models(texts: list[str]) -> None:
    """A mapping condition reads only the attributes it names, and decides as ``match`` does."""
    try:
        bound = [ScimFilter[UserModel](text) for text in texts]
    except InvalidFilterException:
        assume(False)
        raise
    for document in DIRECTORY:
        whole = UserModel.model_validate(document)
        expected = tuple(each.match(whole) for each in bound)
        assert matching(UserModel, bound, document) == expected, (texts, document["userName"])
