"""Users and Groups kept by ``SqlBackend``: documents, versions, uniqueness, tenancy, bad input.

RFC 7644 sections 3.3 (create), 3.4.1 (get), 3.5.1 (replace), 3.6 (delete),
3.14 (versions); docs/rules.md#directory-mirrors-the-idp and
#leavers (a deleted user leaves its groups).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from scim2_models import (
    InvalidValueException,
    NotFoundException,
    PreconditionFailedException,
    UniquenessException,
)
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from connector.db.engine import make_session_factory
from connector.directory.store import DirectoryStore, SqlBackend
from connector.directory.tables import GroupMember, ScimAttributeValue, ScimResource
from scim.backend import ListQuery, MemberChanges, ResourceKind

USER = ResourceKind.USER
GROUP = ResourceKind.GROUP
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def okta_user(user_name: str, **attributes: Any) -> dict[str, Any]:
    """A user as Okta pushes it (tests/replay/samples/idp_lifecycle.json)."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Ada Lovelace",
        "active": True,
        **attributes,
    }


@pytest.fixture
def backend(session: Session, org_id: int) -> SqlBackend:
    return SqlBackend(session, org_id)


def attribute_rows(session: Session, resource_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(ScimAttributeValue)
            .where(ScimAttributeValue.resource_id == resource_id)
        )
        or 0
    )


class TestDocuments:
    def test_okta_creates_then_reads_a_user(self, backend: SqlBackend) -> None:
        sent = okta_user("ada@example.com", externalId="00u1", password="hunter2!")
        created = backend.create(USER, sent)
        backend.commit()

        assert created.version == 'W/"1"'
        document = backend.get(USER, created.id).document
        assert document["id"] == created.id
        assert document["userName"] == "ada@example.com"
        assert document["emails"] == sent["emails"]
        assert document["externalId"] == "00u1"
        assert "password" not in document
        assert document["meta"]["resourceType"] == "User"
        assert document["meta"]["version"] == 'W/"1"'
        assert document["meta"]["created"] == document["meta"]["lastModified"]
        assert document["meta"]["created"].endswith("Z")
        assert "groups" not in document

    def test_client_supplied_id_and_meta_are_ignored(self, backend: SqlBackend) -> None:
        created = backend.create(
            USER, okta_user("ada", id="mine", meta={"version": 'W/"99"', "resourceType": "X"})
        )
        assert created.id != "mine"
        assert created.document["meta"]["version"] == 'W/"1"'
        assert created.document["meta"]["resourceType"] == "User"

    def test_replace_bumps_version_and_reindexes(
        self, backend: SqlBackend, session: Session
    ) -> None:
        created = backend.create(USER, okta_user("ada", title="Analyst"))
        replaced = backend.replace(USER, created.id, okta_user("ada", nickName="Countess"))
        assert replaced.version == 'W/"2"'
        assert "title" not in replaced.document
        assert replaced.document["meta"]["created"] == created.document["meta"]["created"]
        assert replaced.document["meta"]["lastModified"] >= created.document["meta"]["created"]
        assert backend.list(USER, ListQuery(filter=_filter("title pr"))).total == 0
        assert backend.list(USER, ListQuery(filter=_filter('nickName eq "countess"'))).total == 1

    def test_user_name_change_keeps_id(self, backend: SqlBackend) -> None:
        created = backend.create(USER, okta_user("ada"))
        backend.replace(USER, created.id, okta_user("ada.lovelace"))
        assert backend.get(USER, created.id).document["userName"] == "ada.lovelace"
        assert backend.list(USER, ListQuery(filter=_filter('userName eq "ada"'))).total == 0

    def test_leaver_is_deleted_with_memberships_and_index(
        self, backend: SqlBackend, session: Session
    ) -> None:
        leaver = backend.create(USER, okta_user("leaver"))
        group = backend.create(
            GROUP, {"displayName": "Staff"}, MemberChanges(add=frozenset({leaver.id}))
        )
        backend.commit()

        backend.delete(USER, leaver.id)
        backend.commit()

        with pytest.raises(NotFoundException):
            backend.get(USER, leaver.id)
        assert "members" not in backend.get(GROUP, group.id).document
        assert attribute_rows(session, leaver.id) == 0
        assert (
            session.scalar(
                select(func.count())
                .select_from(GroupMember)
                .where(GroupMember.user_id == leaver.id)
            )
            == 0
        )
        # The same userName may come back as a new user (docs/rules.md#leavers).
        assert backend.create(USER, okta_user("leaver")).id != leaver.id

    def test_deleting_a_group_keeps_its_users(self, backend: SqlBackend) -> None:
        user = backend.create(USER, okta_user("ada"))
        group = backend.create(
            GROUP, {"displayName": "Staff"}, MemberChanges(add=frozenset({user.id}))
        )
        backend.delete(GROUP, group.id)
        assert "groups" not in backend.get(USER, user.id).document
        with pytest.raises(NotFoundException):
            backend.delete(GROUP, group.id)

    def test_unknown_ids_are_not_found(self, backend: SqlBackend) -> None:
        for bad in ("nope", "", "x" * 1000, "a\x00b"):
            with pytest.raises(NotFoundException):
                backend.get(USER, bad)
            with pytest.raises(NotFoundException):
                backend.replace(USER, bad, okta_user("ada"))
            with pytest.raises(NotFoundException):
                backend.delete(USER, bad)

    def test_a_user_id_is_not_a_group_id(self, backend: SqlBackend) -> None:
        user = backend.create(USER, okta_user("ada"))
        with pytest.raises(NotFoundException):
            backend.get(GROUP, user.id)


class TestUniqueness:
    def test_user_name_is_unique_case_insensitively(self, backend: SqlBackend) -> None:
        first = backend.create(USER, okta_user("Ada@Example.com"))
        with pytest.raises(UniquenessException):
            backend.create(USER, okta_user("ada@example.COM"))
        # The transaction survives the refusal (the insert ran in a SAVEPOINT).
        backend.commit()
        assert backend.get(USER, first.id).document["userName"] == "Ada@Example.com"

    def test_rename_onto_a_taken_name_is_refused(self, backend: SqlBackend) -> None:
        backend.create(USER, okta_user("ada"))
        other = backend.create(USER, okta_user("grace"))
        with pytest.raises(UniquenessException):
            backend.replace(USER, other.id, okta_user("ADA"))
        assert backend.get(USER, other.id).document["userName"] == "grace"

    def test_group_display_name_is_unique_but_not_across_kinds(self, backend: SqlBackend) -> None:
        backend.create(GROUP, {"displayName": "Admins"})
        with pytest.raises(UniquenessException):
            backend.create(GROUP, {"displayName": "ADMINS"})
        backend.create(USER, okta_user("admins"))

    def test_external_id_is_not_unique(self, backend: SqlBackend) -> None:
        backend.create(USER, okta_user("ada", externalId="same"))
        backend.create(USER, okta_user("grace", externalId="same"))
        assert backend.list(USER, ListQuery(filter=_filter('externalId eq "same"'))).total == 2

    def test_names_are_unique_per_organization_only(
        self, backend: SqlBackend, session: Session, other_org_id: int
    ) -> None:
        backend.create(USER, okta_user("ada"))
        SqlBackend(session, other_org_id).create(USER, okta_user("ada"))

    @pytest.mark.parametrize("kind", [USER, GROUP])
    def test_racing_creates_yield_one_resource_and_one_conflict(
        self, engine: Engine, org_id: int, database_url: str, kind: ResourceKind
    ) -> None:
        if database_url.startswith("sqlite"):
            pytest.skip("SQLite serializes writers (BEGIN IMMEDIATE): no race to lose")
        document = okta_user("racer") if kind is USER else {"displayName": "Racers"}
        factory = make_session_factory(engine)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def create() -> None:
            with factory() as session:
                backend = SqlBackend(session, org_id)
                session.connection()  # begin now, so both transactions overlap
                barrier.wait()
                try:
                    backend.create(kind, document)
                    backend.commit()
                    outcomes.append("created")
                except UniquenessException:
                    backend.rollback()
                    outcomes.append("conflict")

        threads = [threading.Thread(target=create) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes) == ["conflict", "created"]


class TestVersions:
    def test_if_match_current_version_writes(self, backend: SqlBackend) -> None:
        created = backend.create(USER, okta_user("ada"))
        replaced = backend.replace(
            USER, created.id, okta_user("ada", title="x"), expected_version=created.version
        )
        assert replaced.version == 'W/"2"'
        backend.delete(USER, created.id, expected_version='W/"2"')

    @pytest.mark.parametrize("stale", ['W/"1"', '"1"', "garbage", 'W/"3"'])
    def test_stale_version_writes_nothing(self, backend: SqlBackend, stale: str) -> None:
        created = backend.create(USER, okta_user("ada"))
        backend.replace(USER, created.id, okta_user("ada", title="second"))
        with pytest.raises(PreconditionFailedException):
            backend.replace(
                USER, created.id, okta_user("ada", title="lost"), expected_version=stale
            )
        with pytest.raises(PreconditionFailedException):
            backend.delete(USER, created.id, expected_version=stale)
        assert backend.get(USER, created.id).document["title"] == "second"

    def test_star_matches_any_version(self, backend: SqlBackend) -> None:
        created = backend.create(USER, okta_user("ada"))
        backend.replace(USER, created.id, okta_user("ada"), expected_version="*")

    def test_member_change_bumps_the_group_version(self, backend: SqlBackend) -> None:
        user = backend.create(USER, okta_user("ada"))
        group = backend.create(GROUP, {"displayName": "Staff"})
        changed = backend.replace(
            GROUP, group.id, {"displayName": "Staff"}, MemberChanges(add=frozenset({user.id}))
        )
        assert changed.version == 'W/"2"'
        assert backend.get(GROUP, group.id).version == 'W/"2"'

    def test_concurrent_read_modify_write_loses_cleanly(self, engine: Engine, org_id: int) -> None:
        factory = make_session_factory(engine)
        with factory() as session:
            backend = SqlBackend(session, org_id)
            created = backend.create(USER, okta_user("ada"))
            backend.commit()
        with factory() as first, factory() as second:
            seen_by_second = SqlBackend(second, org_id).get(USER, created.id).version
            second.rollback()
            SqlBackend(first, org_id).replace(
                USER, created.id, okta_user("ada", title="first"), expected_version=created.version
            )
            first.commit()
            with pytest.raises(PreconditionFailedException):
                SqlBackend(second, org_id).replace(
                    USER,
                    created.id,
                    okta_user("ada", title="second"),
                    expected_version=seen_by_second,
                )


class TestWritesInOneStatement:
    """A write's row, its attribute-index rows and a user's groups change together, or not at all.

    PostgreSQL sends each as one statement; SQLite as several in its one writer.
    """

    def test_a_refused_create_indexes_nothing(self, backend: SqlBackend, session: Session) -> None:
        backend.create(USER, okta_user("ada", title="Analyst"))
        backend.commit()
        indexed = session.scalar(select(func.count()).select_from(ScimAttributeValue))

        with pytest.raises(UniquenessException):
            backend.create(USER, okta_user("ADA", title="Countess", nickName="Ada"))
        backend.commit()

        assert session.scalar(select(func.count()).select_from(ScimAttributeValue)) == indexed
        assert backend.list(USER, ListQuery(filter=_filter('title eq "countess"'))).total == 0

    def test_a_stale_replace_reindexes_nothing(self, engine: Engine, org_id: int) -> None:
        factory = make_session_factory(engine)
        with factory() as session:
            created = SqlBackend(session, org_id).create(USER, okta_user("ada", title="none"))
            session.commit()
        with factory() as first, factory() as second:
            stale = DirectoryStore(second, org_id)
            seen = stale.get(USER, created.id, include_members=False).version
            second.commit()
            SqlBackend(first, org_id).replace(USER, created.id, okta_user("ada", title="first"))
            first.commit()
            with pytest.raises(PreconditionFailedException):
                stale.replace(
                    USER, created.id, okta_user("ada", title="second"), expected_version=seen
                )
            second.commit()

            reader = SqlBackend(second, org_id)
            assert reader.list(USER, ListQuery(filter=_filter('title eq "first"'))).total == 1
            assert reader.list(USER, ListQuery(filter=_filter('title eq "second"'))).total == 0
            assert reader.get(USER, created.id).version == 'W/"2"'

    @pytest.mark.parametrize(
        "change", [{"title": "Countess"}, {"active": False}], ids=["reindexed", "column only"]
    )
    def test_a_replaced_user_answers_its_groups_in_name_order(
        self, backend: SqlBackend, change: dict[str, Any]
    ) -> None:
        ada = backend.create(USER, okta_user("ada"))
        loner = backend.create(USER, okta_user("loner"))
        for name in ("b-team", "A-team", "c-team"):
            backend.create(GROUP, {"displayName": name}, MemberChanges(add=frozenset({ada.id})))
        backend.commit()

        replaced = backend.replace(USER, ada.id, okta_user("ada", **change))
        alone = backend.replace(USER, loner.id, okta_user("loner", **change))

        groups = replaced.document["groups"]
        assert [group["display"] for group in groups] == ["A-team", "b-team", "c-team"]
        assert {group["type"] for group in groups} == {"direct"}
        assert replaced.document["groups"] == backend.get(USER, ada.id).document["groups"]
        assert "groups" not in alone.document
        assert replaced.version == alone.version == 'W/"2"'


class TestBadInput:
    @pytest.mark.parametrize(
        "document",
        [
            okta_user("nul\x00byte"),
            okta_user("ada", title="a\x00b"),
            okta_user("ada", emails=[{"value": "x\x00@y.z"}]),
            okta_user("ada", **{"x\x00y": 1}),
            okta_user("ada", nickName="\ud800"),
            okta_user("a" * 513),
            okta_user("ada", externalId="e" * 513),
            okta_user("ada", externalId=12),
            okta_user("ada", active="yes"),
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]},
            okta_user(""),
            okta_user("ada", emails=[{"value": "a@b.c", "primary": "yes"}]),
        ],
    )
    def test_unstorable_values_are_refused_before_writing(
        self, backend: SqlBackend, session: Session, document: dict[str, Any]
    ) -> None:
        with pytest.raises(InvalidValueException):
            backend.create(USER, document)
        assert backend.list(USER, ListQuery()).total == 0
        backend.commit()

    def test_unstorable_replacement_leaves_the_user_unchanged(self, backend: SqlBackend) -> None:
        created = backend.create(USER, okta_user("ada", title="kept"))
        with pytest.raises(InvalidValueException):
            backend.replace(USER, created.id, okta_user("ada", title="x\x00"))
        backend.commit()
        assert backend.get(USER, created.id).document["title"] == "kept"

    def test_long_values_are_kept_whole_and_searchable(self, backend: SqlBackend) -> None:
        long_title = "T" * 600 + "end"
        certificate = "MIIC" + "A" * 3000
        backend.create(
            USER,
            okta_user("ada", title=long_title, x509Certificates=[{"value": certificate}]),
        )
        found = backend.list(USER, ListQuery(filter=_filter(f'title eq "{long_title.lower()}"')))
        assert found.total == 1
        assert found.resources[0]["title"] == long_title
        assert backend.list(USER, ListQuery(filter=_filter('title ew "END"'))).total == 1
        assert backend.list(USER, ListQuery(filter=_filter('title co "tend"'))).total == 1
        assert backend.list(USER, ListQuery(filter=_filter(f'title sw "{"t" * 550}"'))).total == 1
        assert (
            backend.list(USER, ListQuery(filter=_filter(f'title eq "{long_title[:-1]}"'))).total
            == 0
        )

    def test_a_name_of_512_characters_is_fine(self, backend: SqlBackend) -> None:
        backend.create(USER, okta_user("a" * 512))
        backend.create(GROUP, {"displayName": "g" * 512})


class TestTenancy:
    def test_another_organization_sees_nothing(
        self, backend: SqlBackend, session: Session, other_org_id: int
    ) -> None:
        user = backend.create(USER, okta_user("ada"))
        group = backend.create(
            GROUP, {"displayName": "Staff"}, MemberChanges(add=frozenset({user.id}))
        )
        backend.commit()
        intruder = SqlBackend(session, other_org_id)

        for kind, resource_id in ((USER, user.id), (GROUP, group.id)):
            with pytest.raises(NotFoundException):
                intruder.get(kind, resource_id)
            with pytest.raises(NotFoundException):
                intruder.replace(kind, resource_id, okta_user("x") | {"displayName": "x"})
            with pytest.raises(NotFoundException):
                intruder.delete(kind, resource_id)
        assert intruder.list(USER, ListQuery()).total == 0
        assert intruder.list(USER, ListQuery(filter=_filter(f'id eq "{user.id}"'))).total == 0
        assert intruder.list(GROUP, ListQuery(filter=_filter(f'members eq "{user.id}"'))).total == 0
        # Nor can it enrol our user into its own group.
        own = intruder.create(GROUP, {"displayName": "Theirs"})
        with pytest.raises(InvalidValueException, match=user.id):
            intruder.replace(
                GROUP, own.id, {"displayName": "Theirs"}, MemberChanges(add=frozenset({user.id}))
            )
        assert backend.get(USER, user.id).document["groups"][0]["value"] == group.id


class TestWhatEachWriteReports:
    """The store tells its caller exactly what each write changed, and nothing more."""

    def test_every_write_reports_documents_and_member_deltas(
        self, session: Session, org_id: int
    ) -> None:
        store = DirectoryStore(session, org_id)
        ada = store.create(USER, okta_user("ada"))
        bob = store.create(USER, okta_user("bob"))
        assert ada.before is None
        assert ada.after["meta"]["version"] == 'W/"1"'
        staff = store.create(
            GROUP, {"displayName": "Staff"}, MemberChanges(add=frozenset({ada.stored.id}))
        )
        assert staff.added == {ada.stored.id}

        retitled = store.replace(USER, ada.stored.id, okta_user("ada", title="x"))
        assert retitled.before is not None
        assert (retitled.before["meta"]["version"], retitled.after["meta"]["version"]) == (
            'W/"1"',
            'W/"2"',
        )
        assert retitled.attributes_changed

        renamed = store.replace(
            GROUP,
            staff.stored.id,
            {"displayName": "All staff"},
            MemberChanges(add=frozenset({ada.stored.id, bob.stored.id})),
        )
        assert renamed.before is not None
        assert (renamed.before["displayName"], renamed.after["displayName"]) == (
            "Staff",
            "All staff",
        )
        assert (renamed.added, renamed.removed) == ({bob.stored.id}, set())

        unchanged = store.replace(
            GROUP,
            staff.stored.id,
            {"displayName": "All staff"},
            MemberChanges(add=frozenset({ada.stored.id})),
        )
        assert not unchanged.attributes_changed
        assert (unchanged.added, unchanged.removed) == (set(), set())

        left = store.update_members(
            staff.stored.id, MemberChanges(remove=frozenset({ada.stored.id}))
        )
        assert not left.attributes_changed
        assert (left.added, left.removed) == (set(), {ada.stored.id})

        assert store.delete(USER, bob.stored.id).related == {staff.stored.id}
        assert store.delete(GROUP, staff.stored.id).related == set()

    def test_a_members_only_update_touches_no_document_or_index_row(
        self, session: Session, org_id: int, engine: Engine
    ) -> None:
        store = DirectoryStore(session, org_id)
        ada = store.create(USER, okta_user("ada"))
        staff = store.create(GROUP, {"displayName": "Staff", "externalId": "staff-1"})
        seen: list[str] = []

        def record(*args: Any) -> None:
            seen.append(" ".join(str(args[2]).split()))

        event.listen(engine, "before_cursor_execute", record)
        try:
            written = store.update_members(
                staff.stored.id, MemberChanges(add=frozenset({ada.stored.id}))
            )
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert written.stored.version == 'W/"2"'
        assert not any("scim_attribute_values" in statement for statement in seen)
        updates = [statement for statement in seen if statement.startswith("UPDATE scim_resources")]
        assert len(updates) == 1
        assert "document" not in updates[0].split(" RETURNING ")[0]


class TestSavepoints:
    def test_a_failed_bulk_operation_rolls_back_alone(self, backend: SqlBackend) -> None:
        with backend.savepoint():
            backend.create(USER, okta_user("kept"))

        def failing_operation() -> None:
            with backend.savepoint():
                backend.create(USER, okta_user("dropped"))
                backend.create(USER, okta_user("kept"))

        with pytest.raises(UniquenessException):
            failing_operation()
        backend.commit()
        names = [d["userName"] for d in backend.list(USER, ListQuery()).resources]
        assert names == ["kept"]

    def test_rollback_forgets_the_request(self, backend: SqlBackend, session: Session) -> None:
        backend.create(USER, okta_user("ada"))
        backend.rollback()
        assert (
            session.scalar(
                select(func.count())
                .select_from(ScimResource)
                .where(ScimResource.org_id == backend.org_id)
            )
            == 0
        )


def _filter(text: str) -> Any:
    from scim2_models import EnterpriseUser, ScimFilter, User

    return ScimFilter[User[EnterpriseUser]](text).ast  # type: ignore[valid-type]


def test_an_unchanged_okta_put_writes_nothing_and_keeps_the_version(
    session: Session, org_id: int, engine: Engine
) -> None:
    store = DirectoryStore(session, org_id)
    ada = store.create(USER, okta_user("ada"))
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(" ".join(str(args[2]).split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        again = store.replace(USER, ada.stored.id, okta_user("ada"))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    changed = store.replace(USER, ada.stored.id, okta_user("ada", title="Engineer"))

    assert again.stored.version == 'W/"1"'
    assert not again.attributes_changed
    assert not [
        statement for statement in seen if statement.startswith(("UPDATE", "DELETE", "INSERT"))
    ]
    assert changed.stored.version == 'W/"2"'
