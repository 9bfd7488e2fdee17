"""The lookups IdPs repeat all day use indexes, on SQLite and PostgreSQL (EXPLAIN).

An Okta org of a few thousand users: a userName or externalId lookup, an
email search, a member check and a user's groups must each read a handful of
index entries, never the tenant: a lookup among 100,000 users costs what it
costs among 1,000.
"""

from __future__ import annotations

from typing import Any

import pytest
from scim2_models import EnterpriseUser, ScimFilter, User
from sqlalchemy import Engine, Select, select, text
from sqlalchemy.orm import Session

from connector.db import dialect as sql
from connector.db.planner import refresh_postgresql_statistics
from connector.derived.roster import users_page_query
from connector.directory.filters import FilterCompiler, sort_order
from connector.directory.store import DEFAULT_MODELS, SqlBackend
from connector.directory.tables import GroupMember, ScimResource
from scim.backend import ListQuery, MemberChanges, ResourceKind

USERS = 1500


@pytest.fixture
def okta_org(session: Session, org_id: int) -> dict[str, Any]:
    backend = SqlBackend(session, org_id)
    ids = [
        backend.create(
            ResourceKind.USER,
            {
                "userName": f"user{index}@example.com",
                "externalId": f"00u{index}",
                "emails": [{"value": f"user{index}@example.com", "type": "work"}],
            },
        ).id
        for index in range(USERS)
    ]
    group = backend.create(
        ResourceKind.GROUP, {"displayName": "Everyone"}, MemberChanges(add=frozenset(ids[:500]))
    )
    backend.commit()
    refresh_postgresql_statistics(session.connection(), threshold=0)
    session.commit()
    return {"org_id": org_id, "users": ids, "group": group.id}


def plan(session: Session, query: Select[Any]) -> str:
    bind = session.get_bind()
    compiled = str(query.compile(bind, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if bind.dialect.name == "sqlite" else "EXPLAIN "
    return "\n".join(str(row[-1]) for row in session.execute(text(prefix + compiled)))


def listing(session: Session, org_id: int, filter_text: str) -> Select[Any]:
    model: Any = User[EnterpriseUser]
    dialect = session.get_bind().dialect.name
    compiler = FilterCompiler(DEFAULT_MODELS[ResourceKind.USER], ResourceKind.USER, org_id, dialect)
    return (
        select(ScimResource.id)
        .where(
            ScimResource.org_id == org_id,
            ScimResource.kind == "User",
            compiler.visit(ScimFilter[model](filter_text).ast),
        )
        .order_by(*sort_order(DEFAULT_MODELS[ResourceKind.USER], ResourceKind.USER, None))
        .limit(100)
    )


def assert_no_tenant_scan(explained: str) -> None:
    for scan in ("Seq Scan on scim_resources", "SCAN scim_resources"):
        assert scan not in explained, explained


class TestPlans:
    def test_user_name_lookup_uses_the_unique_index(
        self, session: Session, okta_org: dict[str, Any]
    ) -> None:
        explained = plan(
            session, listing(session, okta_org["org_id"], 'userName eq "user7@example.com"')
        )
        assert_no_tenant_scan(explained)
        assert (
            "uq_scim_resources_name" in explained
            or "sqlite_autoindex_scim_resources_2" in explained
        )

    def test_external_id_lookup_uses_its_index(
        self, session: Session, okta_org: dict[str, Any]
    ) -> None:
        explained = plan(session, listing(session, okta_org["org_id"], 'externalId eq "00u7"'))
        assert_no_tenant_scan(explained)
        assert "ix_scim_resources_external_id" in explained

    def test_email_search_uses_the_value_index(
        self, session: Session, okta_org: dict[str, Any]
    ) -> None:
        explained = plan(
            session,
            listing(
                session,
                okta_org["org_id"],
                'emails[type eq "work" and value eq "user7@example.com"]',
            ),
        )
        assert "ix_scim_attribute_values_lookup" in explained
        assert "Seq Scan on scim_attribute_values" not in explained
        assert "SCAN scim_attribute_values" not in explained

    def test_member_checks_use_primary_keys(
        self, session: Session, okta_org: dict[str, Any]
    ) -> None:
        dialect = session.get_bind().dialect.name
        wanted = okta_org["users"][:50]
        validation = select(ScimResource.id, ScimResource.org_id, ScimResource.kind).where(
            sql.in_ids(dialect, ScimResource.id, wanted)
        )
        explained = plan(session, validation)
        assert_no_tenant_scan(explained)
        assert "pk_scim_resources" in explained or "sqlite_autoindex_scim_resources_1" in explained
        in_group = select(GroupMember.user_id).where(
            GroupMember.group_id == okta_org["group"],
            sql.in_ids(dialect, GroupMember.user_id, wanted),
        )
        explained = plan(session, in_group)
        assert_no_tenant_scan(explained)

    def test_a_users_groups_use_the_member_index(
        self, session: Session, okta_org: dict[str, Any]
    ) -> None:
        dialect = session.get_bind().dialect.name
        query = select(GroupMember.group_id).where(
            sql.in_ids(dialect, GroupMember.user_id, okta_org["users"][:3])
        )
        explained = plan(session, query)
        assert_no_tenant_scan(explained)
        assert "ix_group_members_user" in explained

    def test_a_page_of_every_users_access_is_a_range_of_the_id_index_without_sorting(
        self, session: Session, okta_org: dict[str, Any]
    ) -> None:
        after = sorted(okta_org["users"])[700]
        page = users_page_query().params(org_id=okta_org["org_id"], after=after, limit=501)
        explained = plan(session, page)
        assert_no_tenant_scan(explained)
        assert "ix_scim_resources_kind_id" in explained
        assert "Sort" not in explained
        assert "TEMP B-TREE" not in explained


def test_a_lookup_costs_the_same_in_a_big_org_as_in_a_small_one(
    session: Session, okta_org: dict[str, Any], other_org_id: int, engine: Engine
) -> None:
    """SQLite's virtual-machine step count stands for the work of one userName lookup."""
    if engine.dialect.name != "sqlite":
        pytest.skip("counts SQLite virtual-machine steps")
    small = SqlBackend(session, other_org_id)
    for index in range(10):
        small.create(ResourceKind.USER, {"userName": f"user{index}@example.com"})
    small.commit()
    big = SqlBackend(session, okta_org["org_id"])
    assert (
        vm_steps(session, big, "user1400@example.com")
        <= vm_steps(session, small, "user7@example.com") * 1.2
    )


def vm_steps(session: Session, backend: SqlBackend, user_name: str) -> int:
    model: Any = User[EnterpriseUser]
    query = ListQuery(
        filter=ScimFilter[model](f'userName eq "{user_name}"').ast, include_members=False
    )
    raw: Any = session.connection().connection.dbapi_connection
    steps = 0

    def progress() -> int:
        nonlocal steps
        steps += 1
        return 0

    raw.set_progress_handler(progress, 1)
    try:
        assert backend.list(ResourceKind.USER, query).total == 1
    finally:
        raw.set_progress_handler(None, 1)
    return steps
