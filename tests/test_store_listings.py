"""Prepared listings answer exactly what the filter compiler answers.

``userName eq``, ``externalId eq``, ``displayName eq`` and ``id eq`` (what Okta
and Entra ID send before nearly every create, RFC 7644 section 3.4.2.2), and
a plain page through a kind, run statements built once
(:mod:`connector.directory.listings`). Each query here is answered twice,
once through them and once through
:class:`~connector.directory.filters.FilterCompiler`, on SQLite and
PostgreSQL, and the pages must be identical: same resources in the same
order, same total, same members.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scim2_models import EnterpriseUser, Group, ScimFilter, User
from scim2_models.path import AttrPath, CompareOperator, Comparison
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session

from connector.directory import store as store_module
from connector.directory.listings import EVERY_RESOURCE, prepared_listing
from connector.directory.store import DEFAULT_MODELS, SqlBackend
from connector.directory.tables import ScimResource
from scim.backend import ListQuery, MemberChanges, Page, ResourceKind, SortKey

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
UserModel = User[EnterpriseUser]


@pytest.fixture
def backend(session: Session, org_id: int) -> SqlBackend:
    return SqlBackend(session, org_id)


@pytest.fixture
def directory(backend: SqlBackend, other_org_id: int, session: Session) -> dict[str, str]:
    """Users whose names and externalIds differ only in case, three sharing an externalId."""
    ids: dict[str, str] = {}
    for user_name, external_id in [
        ("BJensen", "okta-00u1"),
        ("jsmith", "OKTA-00U1"),
        ("amy", "shared"),
        ("ann", "shared"),
        ("bob", "shared"),
        ("zed", None),
    ]:
        document: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": user_name}
        if external_id is not None:
            document["externalId"] = external_id
        ids[user_name] = backend.create(ResourceKind.USER, document).id
    ids["Tour Guides"] = backend.create(
        ResourceKind.GROUP,
        {"displayName": "Tour Guides", "externalId": "grp-1"},
        MemberChanges(add=frozenset({ids["BJensen"], ids["amy"]})),
    ).id
    ids["Board"] = backend.create(
        ResourceKind.GROUP,
        {"displayName": "Board", "externalId": "GRP-1"},
        MemberChanges(add=frozenset({ids["jsmith"]})),
    ).id
    # Created last, though stored first: creation order is not storage order.
    later = datetime.now(UTC) + timedelta(hours=1)
    session.execute(
        update(ScimResource).where(ScimResource.id == ids["amy"]).values(created_at=later)
    )
    # Another tenant with the same names: never part of an answer.
    other = SqlBackend(session, other_org_id)
    other.create(ResourceKind.USER, {"userName": "BJensen", "externalId": "shared"})
    other.create(ResourceKind.GROUP, {"displayName": "Tour Guides", "externalId": "grp-1"})
    backend.commit()
    return ids


def query_of(kind: ResourceKind, text: str | None, **options: Any) -> ListQuery:
    model = UserModel if kind is ResourceKind.USER else Group
    node = None if text is None else ScimFilter[model](text).ast  # type: ignore[valid-type]
    return ListQuery(filter=node, **options)


def compiled(
    backend: SqlBackend, kind: ResourceKind, query: ListQuery, monkeypatch: pytest.MonkeyPatch
) -> Page:
    """The page the filter compiler gives for ``query``."""
    with monkeypatch.context() as patched:
        patched.setattr(store_module, "prepared_listing", lambda *arguments: None)
        return backend.list(kind, query)


def looked_up(backend: SqlBackend, kind: ResourceKind, query: ListQuery) -> Page:
    """The page the prepared statements give for ``query``."""
    assert prepared_listing(DEFAULT_MODELS[kind], kind, query) is not None
    return backend.list(kind, query)


USER_LOOKUPS = [
    'userName eq "bjensen"',
    'userName eq "BJENSEN"',
    'USERNAME Eq "jsmith"',
    'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "amy"',
    'userName eq "nobody"',
    'userName eq ""',
    'externalId eq "okta-00u1"',
    'externalId eq "OKTA-00U1"',
    'externalId eq "Okta-00u1"',
    'externalId eq "shared"',
    'externalId eq "nobody"',
]

PAGINGS: list[dict[str, Any]] = [
    {},
    {"count": 0},
    {"count": 1},
    {"start_index": 2, "count": 1},
    {"start_index": 2},
    {"start_index": 3, "count": 0},
    {"start_index": 50},
    {"start_index": 50, "count": 0},
    {"start_index": 2**63 - 1},
    {"include_members": False},
]


@pytest.mark.usefixtures("directory")
class TestSameAnswers:
    @pytest.mark.parametrize("text", USER_LOOKUPS)
    @pytest.mark.parametrize("paging", PAGINGS)
    def test_user_lookups(
        self,
        backend: SqlBackend,
        monkeypatch: pytest.MonkeyPatch,
        text: str,
        paging: dict[str, Any],
    ) -> None:
        query = query_of(ResourceKind.USER, text, **paging)
        expected = compiled(backend, ResourceKind.USER, query, monkeypatch)
        assert looked_up(backend, ResourceKind.USER, query) == expected

    @pytest.mark.parametrize(
        "text",
        [
            'displayName eq "tour guides"',
            'displayName eq "BOARD"',
            'displayName eq "nobody"',
            'externalId eq "grp-1"',
            'externalId eq "GRP-1"',
            'externalId eq "Grp-1"',
        ],
    )
    @pytest.mark.parametrize("paging", PAGINGS)
    def test_group_lookups(
        self,
        backend: SqlBackend,
        monkeypatch: pytest.MonkeyPatch,
        text: str,
        paging: dict[str, Any],
    ) -> None:
        query = query_of(ResourceKind.GROUP, text, **paging)
        expected = compiled(backend, ResourceKind.GROUP, query, monkeypatch)
        assert looked_up(backend, ResourceKind.GROUP, query) == expected

    @pytest.mark.parametrize("paging", PAGINGS)
    @pytest.mark.parametrize("kind", [ResourceKind.USER, ResourceKind.GROUP])
    def test_pages_of_a_whole_kind(
        self,
        backend: SqlBackend,
        monkeypatch: pytest.MonkeyPatch,
        kind: ResourceKind,
        paging: dict[str, Any],
    ) -> None:
        query = query_of(kind, None, **paging)
        expected = compiled(backend, kind, query, monkeypatch)
        assert looked_up(backend, kind, query) == expected

    @pytest.mark.parametrize("spelling", ["exact", "upper"])
    @pytest.mark.parametrize("kind", [ResourceKind.USER, ResourceKind.GROUP])
    def test_id_lookups(
        self,
        backend: SqlBackend,
        directory: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        spelling: str,
        kind: ResourceKind,
    ) -> None:
        resource_id = directory["BJensen" if kind is ResourceKind.USER else "Board"]
        if spelling == "upper":
            resource_id = resource_id.upper()
        for paging in PAGINGS:
            query = query_of(kind, f'id eq "{resource_id}"', **paging)
            expected = compiled(backend, kind, query, monkeypatch)
            assert looked_up(backend, kind, query) == expected

    def test_the_answers_are_what_the_rfc_asks(self, backend: SqlBackend) -> None:
        """Not only equal to the compiler's: userName folds case, externalId does not."""

        def names(text: str | None, **paging: Any) -> tuple[int, list[str]]:
            query = query_of(ResourceKind.USER, text, **paging)
            page = looked_up(backend, ResourceKind.USER, query)
            return page.total, [document["userName"] for document in page.resources]

        assert names('userName eq "BJENSEN"') == (1, ["BJensen"])
        assert names('externalId eq "OKTA-00U1"') == (1, ["jsmith"])
        assert names('externalId eq "shared"') == (3, ["ann", "bob", "amy"])
        assert names('externalId eq "shared"', start_index=2, count=1) == (3, ["bob"])
        assert names('externalId eq "shared"', count=0) == (3, [])
        assert names('externalId eq "shared"', start_index=9) == (3, [])
        assert names('userName eq "nobody"') == (0, [])
        assert names(None, start_index=2, count=3) == (6, ["jsmith", "ann", "bob"])

    def test_a_found_resource_carries_its_memberships(
        self, backend: SqlBackend, directory: dict[str, str]
    ) -> None:
        query = query_of(ResourceKind.USER, 'userName eq "amy"')
        user = looked_up(backend, ResourceKind.USER, query)
        assert user.resources[0]["groups"] == [
            {"value": directory["Tour Guides"], "display": "Tour Guides", "type": "direct"}
        ]
        group = looked_up(
            backend, ResourceKind.GROUP, query_of(ResourceKind.GROUP, 'displayName eq "board"')
        )
        assert group.resources[0]["members"] == [
            {"value": directory["jsmith"], "display": "jsmith", "type": "User"}
        ]


class TestWhichRequestsArePrepared:
    def test_a_page_of_a_whole_kind_is_prepared_unless_sorted(self) -> None:
        model = DEFAULT_MODELS[ResourceKind.GROUP]
        query = query_of(ResourceKind.GROUP, None, start_index=3, count=7)
        assert prepared_listing(model, ResourceKind.GROUP, query) == EVERY_RESOURCE
        sorted_query = replace(query, sort=SortKey("displayName"))
        assert prepared_listing(model, ResourceKind.GROUP, sorted_query) is None

    @pytest.mark.parametrize(
        "text",
        [
            'userName ne "bjensen"',
            'userName co "jensen"',
            'userName eq "bjensen" and active eq true',
            'not (userName eq "bjensen")',
            "userName eq null",
            "externalId eq null",
            'emails.value eq "x@example.com"',
            'emails[value eq "x@example.com"]',
            'meta.resourceType eq "User"',
            'displayName eq "Babs"',
            'nickName eq "x"',
        ],
    )
    def test_everything_else_goes_to_the_compiler(self, text: str) -> None:
        query = query_of(ResourceKind.USER, text)
        assert prepared_listing(DEFAULT_MODELS[ResourceKind.USER], ResourceKind.USER, query) is None

    def test_a_sorted_lookup_that_may_match_several_goes_to_the_compiler(self) -> None:
        model = DEFAULT_MODELS[ResourceKind.USER]
        sort = SortKey("userName", descending=True)
        by_external_id = query_of(ResourceKind.USER, 'externalId eq "x"')
        by_user_name = query_of(ResourceKind.USER, 'userName eq "x"')
        assert prepared_listing(model, ResourceKind.USER, by_external_id) is not None
        sorted_by_name = replace(by_external_id, sort=sort)
        assert prepared_listing(model, ResourceKind.USER, sorted_by_name) is None
        # One match at most: its order is moot, the sort is not applied.
        assert prepared_listing(model, ResourceKind.USER, replace(by_user_name, sort=sort))

    def test_a_value_no_column_can_hold_goes_to_the_compiler(self) -> None:
        unstorable = ListQuery(
            filter=Comparison(AttrPath("userName"), CompareOperator.eq, "a\x00b")
        )
        model = DEFAULT_MODELS[ResourceKind.USER]
        assert prepared_listing(model, ResourceKind.USER, unstorable) is None

    @pytest.mark.usefixtures("directory")
    def test_a_sorted_external_id_lookup_is_sorted(
        self, backend: SqlBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sort = SortKey("userName", descending=True)
        query = query_of(ResourceKind.USER, 'externalId eq "shared"', sort=sort)
        page = backend.list(ResourceKind.USER, query)
        assert [document["userName"] for document in page.resources] == ["bob", "ann", "amy"]
        assert page == compiled(backend, ResourceKind.USER, query, monkeypatch)


@pytest.mark.usefixtures("directory")
def test_lookups_run_the_same_statements_every_time(backend: SqlBackend, engine: Engine) -> None:
    """The statements are built once: each lookup executes the very same objects."""
    executed: list[object] = []

    def record(connection: Any, statement: Any, *arguments: Any) -> None:
        executed.append(statement)

    event.listen(engine, "before_execute", record)
    try:
        for name in ("bjensen", "nobody", "amy"):
            query = query_of(ResourceKind.USER, f'userName eq "{name}"')
            looked_up(backend, ResourceKind.USER, query)
        for external_id in ("shared", "okta-00u1"):
            query = query_of(ResourceKind.USER, f'externalId eq "{external_id}"', count=1)
            looked_up(backend, ResourceKind.USER, query)
    finally:
        event.remove(engine, "before_execute", record)
    user_name_pages = executed[0], executed[2], executed[3]
    assert user_name_pages[0] is user_name_pages[1] is user_name_pages[2]
    user_groups = executed[1], executed[4], executed[7], executed[10]
    assert all(statement is user_groups[0] for statement in user_groups)
    external_id_pages, external_id_counts = (executed[5], executed[8]), (executed[6], executed[9])
    assert external_id_pages[0] is external_id_pages[1]
    assert external_id_counts[0] is external_id_counts[1]
    assert external_id_pages[0] is not user_name_pages[0]
    assert len(executed) == 11
