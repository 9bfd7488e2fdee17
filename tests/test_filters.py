"""Filters, sorting and paging run as SQL (RFC 7644 sections 3.4.2.2 to 3.4.2.4).

A small directory (an Okta-shaped org: staff with work and home emails,
an enterprise extension, a manager) is searched the way IdPs and admins
search it, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scim2_models import EnterpriseUser, Group, NotFoundException, ScimFilter, User
from scim2_models.path import AttrPath, CompareOperator, Comparison
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session

from connector.directory.store import SqlBackend
from connector.directory.tables import ScimResource
from scim.backend import ListQuery, MemberChanges, Page, ResourceKind, SortKey

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
UserModel = User[EnterpriseUser]


def staff(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": user_name, **attributes}


@pytest.fixture
def backend(session: Session, org_id: int) -> SqlBackend:
    return SqlBackend(session, org_id)


@pytest.fixture
def directory(backend: SqlBackend) -> dict[str, str]:
    """Four staff users and two groups; answers name -> id."""
    ids: dict[str, str] = {}
    users = [
        staff(
            "BJensen",
            externalId="okta-00u1",
            name={"givenName": "Barbara", "familyName": "Jensen"},
            displayName="Babs Jensen",
            title="Tour Guide",
            active=True,
            emails=[
                {"value": "bjensen@example.com", "type": "work", "primary": True},
                {"value": "babs@jensen.org", "type": "home"},
            ],
            **{ENTERPRISE: {"department": "Tours", "employeeNumber": "701984"}},
        ),
        staff(
            "jsmith",
            externalId="okta-00u2",
            name={"givenName": "John", "familyName": "Smith"},
            title="CEO",
            active=True,
            emails=[{"value": "john@home.net", "type": "home"}],
            **{ENTERPRISE: {"department": "Board"}},
        ),
        staff(
            "amy_o'hara%",
            externalId="OKTA-00U3",
            name={"givenName": "Amy", "familyName": "O'Hara"},
            active=False,
            emails=[{"value": "amy@example.com", "type": "work"}],
        ),
        staff("zed", name={"familyName": "Zed"}),
    ]
    for user in users:
        ids[user["userName"]] = backend.create(ResourceKind.USER, user).id
    manager = {
        ENTERPRISE: {
            "manager": {"value": ids["jsmith"]},
            "department": "Tours",
            "employeeNumber": "701984",
        }
    }
    backend.replace(ResourceKind.USER, ids["BJensen"], users[0] | manager)
    ids["Tour Guides"] = backend.create(
        ResourceKind.GROUP,
        {"displayName": "Tour Guides"},
        MemberChanges(add=frozenset({ids["BJensen"], ids["amy_o'hara%"]})),
    ).id
    ids["Board"] = backend.create(
        ResourceKind.GROUP,
        {"displayName": "Board", "externalId": "grp-1"},
        MemberChanges(add=frozenset({ids["jsmith"]})),
    ).id
    backend.commit()
    return ids


def users(backend: SqlBackend, text: str | None, **query: Any) -> list[str]:
    page = search(backend, ResourceKind.USER, text, **query)
    return [document["userName"] for document in page.resources]


def groups(backend: SqlBackend, text: str | None, **query: Any) -> list[str]:
    page = search(backend, ResourceKind.GROUP, text, **query)
    return [document["displayName"] for document in page.resources]


def search(backend: SqlBackend, kind: ResourceKind, text: str | None, **query: Any) -> Page:
    model = UserModel if kind is ResourceKind.USER else Group
    node = None if text is None else ScimFilter[model](text).ast  # type: ignore[valid-type]
    return backend.list(kind, ListQuery(filter=node, **query))


def matching(backend: SqlBackend, text: str) -> set[str]:
    return set(users(backend, text))


ALL = {"BJensen", "jsmith", "amy_o'hara%", "zed"}


@pytest.mark.usefixtures("directory")
class TestOperators:
    """Each operator of RFC 7644 section 3.4.2.2, on strings, booleans and dates."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('userName eq "bjensen"', {"BJensen"}),
            ('userName eq "BJENSEN"', {"BJensen"}),
            ('USERNAME Eq "bjensen"', {"BJensen"}),
            ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "jsmith"', {"jsmith"}),
            ('userName ne "bjensen"', ALL - {"BJensen"}),
            ('userName co "SMI"', {"jsmith"}),
            ('userName sw "bj"', {"BJensen"}),
            ('userName ew "SEN"', {"BJensen"}),
            ('userName gt "jsmith"', {"zed"}),
            ('userName ge "jsmith"', {"jsmith", "zed"}),
            ('userName lt "bjensen"', {"amy_o'hara%"}),
            ('userName le "bjensen"', {"amy_o'hara%", "BJensen"}),
            ("userName pr", ALL),
        ],
    )
    def test_user_name(self, backend: SqlBackend, text: str, expected: set[str]) -> None:
        assert matching(backend, text) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('userName co "%"', {"amy_o'hara%"}),
            ('userName co "_"', {"amy_o'hara%"}),
            ('userName sw "amy_"', {"amy_o'hara%"}),
            ('userName ew "a%"', {"amy_o'hara%"}),
            ('userName co "\'"', {"amy_o'hara%"}),
            ('name.familyName co "o\'h"', {"amy_o'hara%"}),
            ('name.familyName co "%"', set()),
        ],
    )
    def test_wildcards_are_literal(
        self, backend: SqlBackend, text: str, expected: set[str]
    ) -> None:
        assert matching(backend, text) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('externalId eq "okta-00u1"', {"BJensen"}),
            ('externalId eq "OKTA-00U1"', set()),
            ('externalId eq "OKTA-00U3"', {"amy_o'hara%"}),
            ('externalId sw "okta"', {"BJensen", "jsmith"}),
            ('externalId co "00U"', {"amy_o'hara%"}),
            ('externalId ew "u2"', {"jsmith"}),
            ("externalId pr", ALL - {"zed"}),
            ('externalId ne "okta-00u1"', ALL - {"BJensen"}),
        ],
    )
    def test_external_id_is_case_exact(
        self, backend: SqlBackend, text: str, expected: set[str]
    ) -> None:
        assert matching(backend, text) == expected

    def test_id_is_case_exact(self, backend: SqlBackend, directory: dict[str, str]) -> None:
        user_id = directory["jsmith"]
        assert matching(backend, f'id eq "{user_id}"') == {"jsmith"}
        assert matching(backend, f'id eq "{user_id.upper()}"') == set()

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("active eq true", {"BJensen", "jsmith"}),
            ("active eq false", {"amy_o'hara%"}),
            ("active ne true", {"amy_o'hara%", "zed"}),
            ("active pr", ALL - {"zed"}),
            ("not (active pr)", {"zed"}),
            ("emails.primary eq true", {"BJensen"}),
            ("emails.primary ne true", ALL - {"BJensen"}),
        ],
    )
    def test_booleans(self, backend: SqlBackend, text: str, expected: set[str]) -> None:
        assert matching(backend, text) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('title eq "ceo"', {"jsmith"}),
            ('title ne "CEO"', ALL - {"jsmith"}),
            ("title pr", {"BJensen", "jsmith"}),
            ('displayName co "babs"', {"BJensen"}),
            ('name.givenName sw "BAR"', {"BJensen"}),
            ('name.familyName gt "p"', {"jsmith", "zed"}),
            ("name pr", ALL),
            ("name.givenName pr", ALL - {"zed"}),
            ('emails eq "JOHN@home.net"', {"jsmith"}),
            ('emails.value ew "example.com"', {"BJensen", "amy_o'hara%"}),
            ('emails.type eq "home"', {"BJensen", "jsmith"}),
            ('emails.type ne "home"', {"amy_o'hara%", "zed"}),
            ("emails pr", ALL - {"zed"}),
            ('emails.value gt "j@a.com"', {"jsmith"}),
        ],
    )
    def test_indexed_attributes(self, backend: SqlBackend, text: str, expected: set[str]) -> None:
        assert matching(backend, text) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (f'{ENTERPRISE}:department eq "tours"', {"BJensen"}),
            (f'{ENTERPRISE.upper()}:DEPARTMENT eq "Board"', {"jsmith"}),
            (f"{ENTERPRISE}:department pr", {"BJensen", "jsmith"}),
            (f'{ENTERPRISE}:employeeNumber eq "701984"', {"BJensen"}),
            (f"{ENTERPRISE}:manager pr", {"BJensen"}),
            (f'not ({ENTERPRISE}:department eq "Tours")', ALL - {"BJensen"}),
        ],
    )
    def test_enterprise_extension(self, backend: SqlBackend, text: str, expected: set[str]) -> None:
        assert matching(backend, text) == expected

    def test_manager_value_is_case_exact(
        self, backend: SqlBackend, directory: dict[str, str]
    ) -> None:
        manager = directory["jsmith"]
        assert matching(backend, f'{ENTERPRISE}:manager.value eq "{manager}"') == {"BJensen"}
        assert matching(backend, f'{ENTERPRISE}:manager.value eq "{manager.upper()}"') == set()

    @pytest.mark.parametrize(
        "text",
        [
            'nickName eq "x"',
            "title eq null",
            "nickName pr",
            'x509Certificates.value eq "AAAA"',
            'meta.location eq "x"',
        ],
    )
    def test_absent_or_unstored_attributes(self, backend: SqlBackend, text: str) -> None:
        expected = ALL - {"BJensen", "jsmith"} if text == "title eq null" else set()
        assert matching(backend, text) == expected

    def test_unknown_attribute_matches_nothing(self, backend: SqlBackend) -> None:
        node = ScimFilter('shoeSize eq 42 or userName eq "zed"').ast
        page = backend.list(ResourceKind.USER, ListQuery(filter=node))
        assert [document["userName"] for document in page.resources] == ["zed"]
        assert (
            backend.list(ResourceKind.USER, ListQuery(filter=ScimFilter("foo pr").ast)).total == 0
        )
        not_unknown = backend.list(
            ResourceKind.USER, ListQuery(filter=ScimFilter("not (foo pr)").ast)
        )
        assert not_unknown.total == 4


@pytest.mark.usefixtures("directory")
class TestLogic:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('title pr and userName sw "j"', {"jsmith"}),
            ('userName eq "zed" or userName eq "jsmith"', {"zed", "jsmith"}),
            # and binds tighter than or
            ('userName eq "zed" or title pr and active eq true', {"zed", "BJensen", "jsmith"}),
            ('(userName eq "zed" or title pr) and active eq true', {"BJensen", "jsmith"}),
            ('not (userName eq "zed" or title pr)', {"amy_o'hara%"}),
            ('not (title eq "CEO") and not (userName eq "zed")', {"BJensen", "amy_o'hara%"}),
            ('emails.type eq "work" and emails.value co "jensen.org"', {"BJensen"}),
            ("not (not (title pr))", {"BJensen", "jsmith"}),
        ],
    )
    def test_logic(self, backend: SqlBackend, text: str, expected: set[str]) -> None:
        assert matching(backend, text) == expected


@pytest.mark.usefixtures("directory")
class TestValuePaths:
    """Sub-conditions inside brackets hold on ONE element (RFC 7644 section 3.4.2.2)."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ('emails[type eq "work"]', {"BJensen", "amy_o'hara%"}),
            ('emails[type eq "work" and value co "@example.com"]', {"BJensen", "amy_o'hara%"}),
            # Barbara has a work email and a jensen.org email, but not one that is both.
            ('emails[type eq "work" and value co "jensen.org"]', set()),
            ('emails[type eq "home" and value co "jensen.org"]', {"BJensen"}),
            ('emails[type eq "work" or value ew ".net"]', {"BJensen", "jsmith", "amy_o'hara%"}),
            ('emails[not (type eq "work")]', {"BJensen", "jsmith"}),
            ('emails[type ne "work"]', {"BJensen", "jsmith"}),
            ("emails[primary pr]", {"BJensen"}),
            ('emails[type eq "work" and not (primary eq true)]', {"amy_o'hara%"}),
            ('emails[(type eq "home" or type eq "work") and value sw "amy"]', {"amy_o'hara%"}),
            ("emails[display pr]", set()),
            ('emails[type eq "work"] and not (userName eq "bjensen")', {"amy_o'hara%"}),
            (f'schemas[value eq "{ENTERPRISE}"]', ALL),
        ],
    )
    def test_value_paths(self, backend: SqlBackend, text: str, expected: set[str]) -> None:
        assert matching(backend, text) == expected


class TestMemberships:
    def test_groups_by_member(self, backend: SqlBackend, directory: dict[str, str]) -> None:
        jensen, smith = directory["BJensen"], directory["jsmith"]
        assert groups(backend, f'members.value eq "{jensen}"') == ["Tour Guides"]
        assert groups(backend, f'members eq "{smith}"') == ["Board"]
        assert groups(backend, f'members[value eq "{smith}"]') == ["Board"]
        assert groups(backend, f'members[value eq "{smith.upper()}"]') == []
        assert groups(backend, f'members[value eq "{jensen}" and type eq "user"]') == [
            "Tour Guides"
        ]
        assert set(groups(backend, "members pr")) == {"Tour Guides", "Board"}
        assert groups(backend, f'not (members.value eq "{smith}")') == ["Tour Guides"]
        assert groups(backend, f'members.value ne "{smith}"') == ["Tour Guides"]
        assert groups(backend, 'members[display eq "BABS JENSEN"]') == ["Tour Guides"]
        assert groups(backend, 'members.display eq "jsmith"') == ["Board"]
        assert groups(backend, "members.$ref pr") == []

    def test_users_by_group(self, backend: SqlBackend, directory: dict[str, str]) -> None:
        tours = directory["Tour Guides"]
        assert matching(backend, f'groups.value eq "{tours}"') == {"BJensen", "amy_o'hara%"}
        assert matching(backend, f'groups eq "{tours}"') == {"BJensen", "amy_o'hara%"}
        assert matching(backend, 'groups.display eq "board"') == {"jsmith"}
        assert matching(backend, 'groups[display sw "Tour" and type eq "direct"]') == {
            "BJensen",
            "amy_o'hara%",
        }
        assert matching(backend, "not (groups pr)") == {"zed"}

    def test_group_attributes(self, backend: SqlBackend, directory: dict[str, str]) -> None:
        assert groups(backend, 'displayName eq "board"') == ["Board"]
        assert groups(backend, 'displayName sw "tour"') == ["Tour Guides"]
        assert groups(backend, 'externalId eq "grp-1"') == ["Board"]
        assert groups(backend, 'externalId eq "GRP-1"') == []
        assert groups(backend, 'meta.resourceType eq "Group"', sort=SortKey("displayName")) == [
            "Board",
            "Tour Guides",
        ]


class TestDates:
    def test_meta_created_and_last_modified(
        self, backend: SqlBackend, session: Session, directory: dict[str, str]
    ) -> None:
        past = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
        session.execute(
            update(ScimResource)
            .where(ScimResource.id == directory["zed"])
            .values(created_at=past, modified_at=past + timedelta(days=1))
        )
        session.commit()
        assert matching(backend, 'meta.created lt "2021-01-01T00:00:00Z"') == {"zed"}
        assert matching(backend, 'meta.created eq "2020-01-02T03:04:05Z"') == {"zed"}
        assert matching(backend, 'meta.created eq "2020-01-02T04:04:05+01:00"') == {"zed"}
        assert matching(backend, 'meta.created gt "2020-01-02T03:04:05Z"') == ALL - {"zed"}
        assert matching(backend, 'meta.lastModified ge "2020-01-03T03:04:05Z"') == ALL
        assert matching(backend, 'meta.lastModified le "2020-01-03T03:04:05Z"') == {"zed"}

    def test_meta_created_round_trips(self, backend: SqlBackend) -> None:
        created = backend.create(ResourceKind.USER, staff("ada"))
        stamp = created.document["meta"]["created"]
        assert matching(backend, f'meta.created eq "{stamp}"') == {"ada"}
        assert matching(backend, f'meta.lastModified ge "{stamp}"') == {"ada"}


class TestSortingAndPaging:
    def test_sort_by_user_name(self, backend: SqlBackend, directory: dict[str, str]) -> None:
        assert users(backend, None, sort=SortKey("userName")) == [
            "amy_o'hara%",
            "BJensen",
            "jsmith",
            "zed",
        ]
        assert users(backend, None, sort=SortKey("userName", descending=True)) == [
            "zed",
            "jsmith",
            "BJensen",
            "amy_o'hara%",
        ]

    def test_missing_values_sort_last_ascending(
        self, backend: SqlBackend, directory: dict[str, str]
    ) -> None:
        assert users(backend, None, sort=SortKey("title")) == [
            "jsmith",
            "BJensen",
            *sorted(["amy_o'hara%", "zed"], key=lambda name: directory[name]),
        ]
        assert users(backend, None, sort=SortKey("title", descending=True))[2:] == [
            "BJensen",
            "jsmith",
        ]

    def test_multi_valued_sorts_by_primary_then_first(
        self, backend: SqlBackend, directory: dict[str, str]
    ) -> None:
        # BJensen's primary is bjensen@example.com, though babs@... sorts first.
        ordered = users(backend, "emails pr", sort=SortKey("emails.value"))
        assert ordered == ["amy_o'hara%", "BJensen", "jsmith"]
        assert users(backend, "emails pr", sort=SortKey("emails")) == ordered

    def test_sort_by_extension_date_and_boolean(
        self, backend: SqlBackend, directory: dict[str, str]
    ) -> None:
        by_department = users(backend, "userName pr", sort=SortKey(f"{ENTERPRISE}:department"))
        assert by_department[:2] == ["jsmith", "BJensen"]
        assert users(backend, None, sort=SortKey("meta.created")) == [
            "BJensen",
            "jsmith",
            "amy_o'hara%",
            "zed",
        ]
        assert users(backend, "active pr", sort=SortKey("active")) == [
            "amy_o'hara%",
            *sorted(["BJensen", "jsmith"], key=lambda name: directory[name]),
        ]

    def test_unsortable_attributes_fall_back_to_creation_order(
        self, backend: SqlBackend, directory: dict[str, str]
    ) -> None:
        creation = ["BJensen", "jsmith", "amy_o'hara%", "zed"]
        assert users(backend, None) == creation
        assert users(backend, None, sort=SortKey("shoeSize")) == creation
        assert users(backend, None, sort=SortKey("groups.value")) == creation
        assert users(backend, None, sort=SortKey("name")) == creation

    def test_paging_counts_every_match(
        self, backend: SqlBackend, directory: dict[str, str]
    ) -> None:
        pages = [
            search(
                backend,
                ResourceKind.USER,
                "userName pr",
                start_index=start,
                count=3,
                sort=SortKey("userName"),
            )
            for start in (1, 4, 7)
        ]
        assert [page.total for page in pages] == [4, 4, 4]
        assert [len(page.resources) for page in pages] == [3, 1, 0]
        only_count = search(backend, ResourceKind.USER, "active pr", count=0)
        assert (only_count.total, only_count.resources) == (3, [])
        shifted = search(backend, ResourceKind.USER, None, start_index=2, count=2)
        assert (shifted.total, len(shifted.resources)) == (4, 2)
        assert search(backend, ResourceKind.USER, None, start_index=0).total == 4

    def test_members_are_not_loaded_when_excluded(
        self, backend: SqlBackend, directory: dict[str, str], engine: Engine
    ) -> None:
        with recorded_statements(engine) as statements:
            page = search(backend, ResourceKind.GROUP, None, include_members=False)
        assert all("members" not in document for document in page.resources)
        assert not any("group_members" in statement for statement in statements)
        with recorded_statements(engine) as statements:
            page = search(backend, ResourceKind.GROUP, None, sort=SortKey("displayName"))
        assert [len(document["members"]) for document in page.resources] == [1, 2]
        assert sum("group_members" in statement for statement in statements) == 1


class TestFiltersRunInSql:
    def test_one_select_per_page_and_no_rows_beyond_the_page(
        self, backend: SqlBackend, directory: dict[str, str], engine: Engine
    ) -> None:
        rows_fetched: list[int] = []

        with recorded_statements(engine) as statements:
            page = search(
                backend,
                ResourceKind.USER,
                'emails[type eq "work" and value co "@example.com"] and active eq true',
                include_members=False,
            )
            rows_fetched.append(len(page.resources))
        assert [document["userName"] for document in page.resources] == ["BJensen"]
        selects = [statement for statement in statements if statement.startswith("SELECT")]
        assert len(selects) == 1
        assert "scim_attribute_values" in selects[0]
        assert "WHERE" in selects[0]

    def test_lookup_by_user_name_reads_one_row(
        self, backend: SqlBackend, directory: dict[str, str], engine: Engine
    ) -> None:
        counted: list[int] = []

        def count_rows(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.startswith("SELECT") and "scim_resources" in statement:
                counted.append(cursor.rowcount)

        event.listen(engine, "after_cursor_execute", count_rows)
        try:
            assert users(backend, 'userName eq "zed"', include_members=False) == ["zed"]
        finally:
            event.remove(engine, "after_cursor_execute", count_rows)
        assert len(counted) == 1


@contextmanager
def recorded_statements(engine: Engine) -> Iterator[list[str]]:
    """Collects the SQL text of every statement run on ``engine`` inside the block."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lstrip())

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.usefixtures("directory")
class TestUnstorableOperands:
    """Filter values the database could not even receive match nothing, never a 500."""

    @pytest.mark.parametrize(
        "node",
        [
            Comparison(AttrPath("userName"), CompareOperator.eq, "zed\x00"),
            Comparison(AttrPath("title"), CompareOperator.co, "\ud800"),
            Comparison(AttrPath("id"), CompareOperator.eq, "x" * 5000),
            Comparison(
                AttrPath("meta", "created"), CompareOperator.gt, "9999-12-31T23:59:59-01:00"
            ),
            Comparison(AttrPath("meta", "created"), CompareOperator.gt, "not a date"),
        ],
    )
    def test_matches_nothing(self, backend: SqlBackend, node: Comparison) -> None:
        assert backend.list(ResourceKind.USER, ListQuery(filter=node)).total == 0

    def test_negation_of_an_unstorable_value_matches_everyone(self, backend: SqlBackend) -> None:
        node = Comparison(AttrPath("userName"), CompareOperator.ne, "zed\x00")
        assert backend.list(ResourceKind.USER, ListQuery(filter=node)).total == 4

    def test_members_named_with_unstorable_ids(
        self, backend: SqlBackend, directory: dict[str, str]
    ) -> None:
        node = Comparison(AttrPath("members", "value"), CompareOperator.eq, "\x00")
        assert backend.list(ResourceKind.GROUP, ListQuery(filter=node)).total == 0
        backend.replace(
            ResourceKind.GROUP,
            directory["Board"],
            {"displayName": "Board"},
            MemberChanges(remove=frozenset({"\x00", "\udc80"})),
        )
        with pytest.raises(NotFoundException):
            backend.get(ResourceKind.USER, "\udc80")
