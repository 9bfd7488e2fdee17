"""Group membership as O(k) set operations (RFC 7644 section 3.5.2).

Okta pushes members in PATCH batches and may PUT a group's whole member
list; Entra batches adds and removes into one PATCH. Whatever the size of the
group, a delta naming k members must touch k rows, not the group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from scim2_models import InvalidValueException
from sqlalchemy import Engine, event, insert
from sqlalchemy.orm import Session

from connector.directory.store import SqlBackend, Written
from connector.directory.tables import ScimResource
from scim.backend import ListQuery, MemberChanges, ResourceKind, Stored

USER = ResourceKind.USER
GROUP = ResourceKind.GROUP


class Recorder:
    """The (joined, left) sets the store reported, one pair per membership change."""

    def __init__(self) -> None:
        self.changes: list[tuple[set[str], set[str]]] = []

    def note(self, written: Written) -> Stored:
        if written.added or written.removed:
            self.changes.append((set(written.added), set(written.removed)))
        return written.stored


class RecordingBackend(SqlBackend):
    """The directory store as the protocol layer sees it, noting what each write reported."""

    def __init__(self, session: Session, org_id: int, recorder: Recorder) -> None:
        super().__init__(session, org_id)
        self.recorder = recorder

    def create(
        self, kind: ResourceKind, document: dict[str, Any], members: MemberChanges | None = None
    ) -> Stored:
        return self.recorder.note(self.store.create(kind, document, members))

    def replace(
        self,
        kind: ResourceKind,
        resource_id: str,
        document: dict[str, Any],
        members: MemberChanges | None = None,
        *,
        expected_version: str | None = None,
    ) -> Stored:
        written = self.store.replace(
            kind, resource_id, document, members, expected_version=expected_version
        )
        return self.recorder.note(written)

    def update_members(
        self, group_id: str, members: MemberChanges, *, expected_version: str | None = None
    ) -> Stored:
        written = self.store.update_members(group_id, members, expected_version=expected_version)
        return self.recorder.note(written)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def backend(session: Session, org_id: int, recorder: Recorder) -> RecordingBackend:
    return RecordingBackend(session, org_id, recorder)


@pytest.fixture
def people(backend: SqlBackend) -> list[str]:
    ids = [backend.create(USER, {"userName": f"user{index:02}"}).id for index in range(6)]
    backend.commit()
    return ids


@pytest.fixture
def group_id(backend: SqlBackend) -> str:
    group = backend.create(GROUP, {"displayName": "Engineering"})
    backend.commit()
    return group.id


def change(backend: SqlBackend, group_id: str, **delta: Any) -> None:
    frozen = {
        key: frozenset(value) if isinstance(value, list | set) else value
        for key, value in delta.items()
    }
    backend.replace(GROUP, group_id, {"displayName": "Engineering"}, MemberChanges(**frozen))


def members(backend: SqlBackend, group_id: str) -> set[str]:
    document = backend.get(GROUP, group_id).document
    return {member["value"] for member in document.get("members", [])}


class TestDeltas:
    def test_okta_pushes_members_in_batches(
        self, backend: SqlBackend, people: list[str], group_id: str, recorder: Recorder
    ) -> None:
        change(backend, group_id, add=people[:3])
        change(backend, group_id, add=people[2:5])  # people[2] is already in: a no-op for it
        assert members(backend, group_id) == set(people[:5])
        assert recorder.changes == [(set(people[:3]), set()), (set(people[3:5]), set())]

    def test_adding_present_members_changes_nothing(
        self, backend: SqlBackend, people: list[str], group_id: str, recorder: Recorder
    ) -> None:
        change(backend, group_id, add=people[:2])
        change(backend, group_id, add=people[:2])
        change(backend, group_id, remove=[people[5]])
        assert recorder.changes == [(set(people[:2]), set())]

    def test_entra_adds_and_removes_in_one_patch(
        self, backend: SqlBackend, people: list[str], group_id: str, recorder: Recorder
    ) -> None:
        change(backend, group_id, add=people[:3])
        change(backend, group_id, remove=[people[0]], add=[people[3], people[4]])
        assert members(backend, group_id) == {people[1], people[2], people[3], people[4]}
        assert recorder.changes[-1] == ({people[3], people[4]}, {people[0]})

    def test_put_applies_only_the_difference(
        self, backend: SqlBackend, people: list[str], group_id: str, recorder: Recorder
    ) -> None:
        change(backend, group_id, add=people[:4])
        change(backend, group_id, replace=people[2:6])
        assert members(backend, group_id) == set(people[2:6])
        assert recorder.changes[-1] == ({people[4], people[5]}, {people[0], people[1]})
        change(backend, group_id, replace=[])
        assert members(backend, group_id) == set()

    def test_remove_all_then_add_keeps_the_readded(
        self, backend: SqlBackend, people: list[str], group_id: str, recorder: Recorder
    ) -> None:
        change(backend, group_id, add=people[:3])
        change(backend, group_id, remove_all=True, add=[people[0], people[5]])
        assert members(backend, group_id) == {people[0], people[5]}
        # people[0] left and came back in the same request: no net change for it.
        assert recorder.changes[-1] == ({people[5]}, {people[1], people[2]})

    def test_order_is_replace_remove_all_remove_add(
        self, backend: SqlBackend, people: list[str], group_id: str
    ) -> None:
        change(backend, group_id, replace=people[:3], remove=[people[1]], add=[people[4]])
        assert members(backend, group_id) == {people[0], people[2], people[4]}
        change(backend, group_id, replace=people[:3], remove_all=True)
        assert members(backend, group_id) == set()

    def test_members_come_with_display_and_type(
        self, backend: SqlBackend, people: list[str], group_id: str
    ) -> None:
        backend.replace(USER, people[0], {"userName": "user00", "displayName": "Ada L."})
        change(backend, group_id, add=people[:2])
        listed = backend.get(GROUP, group_id).document["members"]
        assert listed == [
            {"value": people[0], "display": "Ada L.", "type": "User"},
            {"value": people[1], "display": "user01", "type": "User"},
        ]
        groups = backend.get(USER, people[0]).document["groups"]
        assert groups == [{"value": group_id, "display": "Engineering", "type": "direct"}]

    def test_create_with_members(
        self, backend: SqlBackend, people: list[str], recorder: Recorder
    ) -> None:
        created = backend.create(
            GROUP, {"displayName": "Ops"}, MemberChanges(add=frozenset(people[:2]))
        )
        assert {member["value"] for member in created.document["members"]} == set(people[:2])
        assert recorder.changes == [(set(people[:2]), set())]

    def test_replace_does_not_read_the_member_list(
        self, backend: SqlBackend, people: list[str], group_id: str
    ) -> None:
        change(backend, group_id, add=people)
        stored = backend.replace(
            GROUP,
            group_id,
            {"displayName": "Engineering"},
            MemberChanges(remove=frozenset({people[0]})),
        )
        assert "members" not in stored.document


class TestRefusals:
    def test_unknown_member_is_refused_by_name_and_nothing_is_written(
        self, backend: SqlBackend, people: list[str], group_id: str
    ) -> None:
        with pytest.raises(InvalidValueException, match="ghost-id") as refused:
            change(backend, group_id, add=[people[0], "ghost-id"])
        assert people[0] not in refused.value.detail
        backend.rollback()
        assert members(backend, group_id) == set()

    def test_a_group_is_not_a_member(
        self, backend: SqlBackend, people: list[str], group_id: str
    ) -> None:
        other = backend.create(GROUP, {"displayName": "Other"})
        with pytest.raises(InvalidValueException, match=other.id):
            change(backend, group_id, add=[other.id])
        with pytest.raises(InvalidValueException, match="ghost"):
            backend.create(
                GROUP, {"displayName": "New"}, MemberChanges(replace=frozenset({"ghost"}))
            )

    def test_removing_unknown_ids_is_a_no_op(
        self, backend: SqlBackend, people: list[str], group_id: str, recorder: Recorder
    ) -> None:
        change(backend, group_id, remove=["ghost", "x" * 300])
        assert recorder.changes == []

    def test_bad_ids_never_reach_the_database_as_errors(
        self, backend: SqlBackend, group_id: str
    ) -> None:
        with pytest.raises(InvalidValueException):
            change(backend, group_id, add=["nul\x00id"])
        with pytest.raises(InvalidValueException, match="and 39995 more"):
            change(backend, group_id, add=[f"ghost-{index}" for index in range(40_000)])


def labels(backend: SqlBackend, group_id: str) -> dict[str, str]:
    document = backend.get(GROUP, group_id).document
    return {member["value"]: member["display"] for member in document.get("members", [])}


class TestLabels:
    """``members.display`` as the IdP sent it (RFC 7643 section 4.2), else the user's name."""

    def test_labels_are_stored_with_the_members_and_others_show_the_name(
        self, backend: SqlBackend, people: list[str], group_id: str
    ) -> None:
        change(backend, group_id, add=people[:2], display={people[0]: "Ada (Ops)"})
        assert labels(backend, group_id) == {people[0]: "Ada (Ops)", people[1]: "user01"}

    def test_an_add_with_a_label_relabels_and_without_one_keeps_it(
        self, backend: SqlBackend, people: list[str], group_id: str, recorder: Recorder
    ) -> None:
        change(backend, group_id, add=people[:1], display={people[0]: "Ada"})
        change(backend, group_id, add=people[:1], display={people[0]: "Ada L."})
        change(backend, group_id, add=people[:1])
        assert labels(backend, group_id) == {people[0]: "Ada L."}
        assert recorder.changes == [({people[0]}, set())]

    def test_a_replacement_keeps_exactly_the_labels_sent(
        self, backend: SqlBackend, people: list[str], group_id: str, recorder: Recorder
    ) -> None:
        change(backend, group_id, add=people[:2], display={people[0]: "A", people[1]: "B"})
        change(backend, group_id, replace=people[:3], display={people[0]: "A", people[2]: "C"})
        assert labels(backend, group_id) == {people[0]: "A", people[1]: "user01", people[2]: "C"}
        assert recorder.changes[-1] == ({people[2]}, set())

    def test_a_removed_and_readded_member_takes_its_new_label(
        self, backend: SqlBackend, people: list[str], group_id: str
    ) -> None:
        change(backend, group_id, add=people[:1], display={people[0]: "old"})
        change(backend, group_id, remove_all=True, add=people[:1], display={people[0]: "new"})
        assert labels(backend, group_id) == {people[0]: "new"}

    def test_a_put_changing_one_label_rewrites_one_row_and_no_membership(
        self, backend: SqlBackend, session: Session, org_id: int, engine: Engine, group_id: str
    ) -> None:
        users = bulk_users(session, org_id, 1000, "label")
        sent = {user_id: f"Person {index}" for index, user_id in enumerate(users)}
        change(backend, group_id, replace=users, display=sent)
        backend.commit()
        sent[users[500]] = "Person 500 (Ops)"
        recorder = Recorder()
        backend.recorder = recorder
        with rowcounts_on(engine) as written:
            change(backend, group_id, replace=users, display=sent)
        assert [count for statement, count in written if "UPDATE group_members" in statement] == [1]
        assert recorder.changes == []
        assert labels(backend, group_id)[users[500]] == "Person 500 (Ops)"

    @pytest.mark.parametrize(
        ("label", "detail"),
        [("x" * 513, "longer than 512"), ("nul\x00", "NUL character")],
    )
    def test_an_unstorable_label_is_invalid_value_and_nothing_is_written(
        self, backend: SqlBackend, people: list[str], group_id: str, label: str, detail: str
    ) -> None:
        with pytest.raises(InvalidValueException, match=detail):
            change(backend, group_id, add=people[:2], display={people[1]: label})
        backend.rollback()
        assert labels(backend, group_id) == {}
        change(backend, group_id, add=people[:1], display={people[0]: "x" * 512})
        assert labels(backend, group_id) == {people[0]: "x" * 512}


@contextmanager
def rowcounts_on(engine: Engine) -> Iterator[list[tuple[str, int]]]:
    """Each statement run, with the number of rows it reports having changed."""
    recorded: list[tuple[str, int]] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        recorded.append((statement, cursor.rowcount))

    event.listen(engine, "after_cursor_execute", record)
    try:
        yield recorded
    finally:
        event.remove(engine, "after_cursor_execute", record)


@contextmanager
def statements_on(engine: Engine) -> Iterator[list[str]]:
    recorded: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        recorded.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield recorded
    finally:
        event.remove(engine, "before_cursor_execute", record)


def bulk_users(session: Session, org_id: int, count: int, prefix: str) -> list[str]:
    """Users inserted straight into the table: scenario set-up, not the code under test."""
    from datetime import UTC, datetime
    from uuid import uuid4

    now = datetime.now(UTC)
    rows = [
        {
            "id": str(uuid4()),
            "org_id": org_id,
            "kind": "User",
            "name": f"{prefix}{index}",
            "name_key": f"{prefix}{index}",
            "document": {"userName": f"{prefix}{index}"},
            "version": 1,
            "created_at": now,
            "modified_at": now,
        }
        for index in range(count)
    ]
    session.execute(insert(ScimResource), rows)
    return [row["id"] for row in rows]


class TestCost:
    """A delta of k members costs the same whatever the group's size."""

    def test_statements_of_a_patch_do_not_grow_with_the_group(
        self, backend: SqlBackend, session: Session, org_id: int, engine: Engine, group_id: str
    ) -> None:
        users = bulk_users(session, org_id, 3000, "bulk")
        backend.commit()
        shapes = []
        for start in (0, 2900):
            with statements_on(engine) as statements:
                change(backend, group_id, add=users[start : start + 50])
                backend.commit()
            shapes.append(statements)
        change(backend, group_id, add=users[50:2900])
        with statements_on(engine) as statements:
            change(backend, group_id, add=users[2950:], remove=[users[0]])
        assert len(shapes[0]) == len(shapes[1])
        # No statement reads or writes the group's member list as a whole:
        # every one touching group_members names the k users.
        for statement in statements:
            if "group_members" in statement:
                assert "user_id" in statement
        assert not any(
            statement.lstrip().upper().startswith("SELECT") and "group_members" in statement
            for statement in statements
        )

    def test_okta_labelled_batches_cost_the_same_in_a_big_group(
        self, backend: SqlBackend, session: Session, org_id: int, engine: Engine, group_id: str
    ) -> None:
        users = bulk_users(session, org_id, 3000, "okta")
        backend.commit()

        def labelled_batch(batch: list[str]) -> list[str]:
            with statements_on(engine) as statements:
                change(backend, group_id, add=batch, display={user: f"{user}@x" for user in batch})
                backend.commit()
            return statements

        small = labelled_batch(users[:50])
        change(backend, group_id, add=users[50:2900])
        backend.commit()
        big = labelled_batch(users[2900:2950])
        assert len(small) == len(big)
        assert all("user_id" in statement for statement in big if "group_members" in statement)

    def test_put_of_a_large_list_is_one_statement_per_step(
        self, backend: SqlBackend, session: Session, org_id: int, engine: Engine, group_id: str
    ) -> None:
        users = bulk_users(session, org_id, 5000, "put")
        backend.commit()
        change(backend, group_id, replace=users[:4000])
        with statements_on(engine) as statements:
            change(backend, group_id, replace=users[1000:])
        assert members(backend, group_id) == set(users[1000:])
        touching = [statement for statement in statements if "group_members" in statement]
        # One DELETE of the leavers, one UPDATE of the labels that differ, one
        # INSERT of the joiners.
        assert len(touching) == 3

    def test_a_page_of_groups_reads_members_in_one_query(
        self, backend: SqlBackend, people: list[str], engine: Engine
    ) -> None:
        for index in range(5):
            backend.create(
                GROUP, {"displayName": f"team{index}"}, MemberChanges(add=frozenset(people))
            )
        with statements_on(engine) as statements:
            page = backend.list(GROUP, ListQuery())
        assert all(len(document["members"]) == 6 for document in page.resources)
        assert sum("group_members" in statement for statement in statements) == 1
        with statements_on(engine) as statements:
            users = backend.list(USER, ListQuery())
        assert all(len(document["groups"]) == 5 for document in users.resources)
        assert sum("group_members" in statement for statement in statements) == 1


class TestConcurrency:
    def test_two_idp_batches_on_one_group_both_land(self, engine: Any, org_id: int) -> None:
        """Entra and a retry PATCH the same group at once: both deltas apply, none is lost."""
        import threading

        from connector.db.engine import make_session_factory

        factory = make_session_factory(engine)
        with factory() as session:
            setup = SqlBackend(session, org_id)
            users = [setup.create(USER, {"userName": f"c{index}"}).id for index in range(40)]
            group = setup.create(GROUP, {"displayName": "Busy"})
            setup.commit()
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def patch(batch: list[str]) -> None:
            try:
                with factory() as session:
                    backend = SqlBackend(session, org_id)
                    barrier.wait()
                    backend.replace(
                        GROUP,
                        group.id,
                        {"displayName": "Busy"},
                        MemberChanges(add=frozenset(batch)),
                    )
                    backend.commit()
            except BaseException as error:  # reported by the assertion below
                errors.append(error)

        threads = [
            threading.Thread(target=patch, args=(users[:20],)),
            threading.Thread(target=patch, args=(users[20:],)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        with factory() as session:
            stored = SqlBackend(session, org_id).get(GROUP, group.id)
        assert {member["value"] for member in stored.document["members"]} == set(users)
        assert stored.version == 'W/"3"'
