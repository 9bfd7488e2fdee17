"""The storage contract every :class:`scim.backend.Backend` keeps, as a reusable test suite.

The tests of :class:`BackendContract` talk to a backend only through
:class:`scim.backend.Backend`: they check what its docstrings (and those of
:class:`~scim.backend.ListQuery`, :class:`~scim.backend.MemberChanges` and
:class:`~scim.backend.Page`) promise, so that the protocol layer may rely on
any implementation alike. Subclass it and give it an ``open_backend``
fixture, a factory of backends of one fresh, empty tenant, each call a new
transaction::

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def open_backend(self) -> OpenBackend:
            store = MyStore()
            return lambda: MyBackend(store)

Where an implementation legitimately differs, a capability flag of the class
says so and the tests that need the capability are skipped with its reason:

- :attr:`BackendContract.tenants`: the backend serves one tenant among
  several; give ``open_other_tenant`` too;
- :attr:`BackendContract.observable_storage`: what the backend reads and
  writes can be watched; give ``probe`` (a :class:`StorageProbe`).

A SQLite database holds one writer at a time: a test that opens a second
backend does so before the first one writes, or after it committed or rolled
back.

RFC 7644 sections 3.3 (create), 3.4 (get, list, filter, sort, paging), 3.5.1
and 3.5.2 (replace, member deltas), 3.6 (delete), 3.7 (Bulk: one savepoint
per operation) and 3.14 (versions).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import pytest
from scim2_models import (
    InvalidValueException,
    NotFoundException,
    PreconditionFailedException,
    ScimFilter,
    UniquenessException,
)
from scim2_models.path.expressions import FilterNode

from scim.backend import Backend, Document, ListQuery, MemberChanges, ResourceKind, SortKey, Stored
from scim.resources import GROUP_SCHEMA, MODELS, USER_SCHEMA

USER = ResourceKind.USER
GROUP = ResourceKind.GROUP

OpenBackend = Callable[[], Backend]
"""A new backend of the tenant under test, in a transaction of its own."""

_VERSION = re.compile(r'W/"(\d+)"')


@dataclass
class Observed:
    """What a backend did while a :class:`StorageProbe` watched it."""

    member_reads: int = 0
    """Reads of stored memberships (group members, user groups)."""
    document_writes: int = 0
    """Writes of a resource's attributes (its document, or what indexes it)."""


class StorageProbe(Protocol):
    """Watches what a backend reads and writes beneath :class:`scim.backend.Backend`."""

    def watch(self) -> AbstractContextManager[Observed]:
        """Count, live, what the backend does inside the block."""
        ...


# -- documents as the protocol layer hands them over (RFC 7643 sections 4.1, 4.2) --------


def user(user_name: str, **attributes: Any) -> Document:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def group(display_name: str, **attributes: Any) -> Document:
    return {"schemas": [GROUP_SCHEMA], "displayName": display_name, **attributes}


def adding(*user_ids: str, **labels: str) -> MemberChanges:
    return MemberChanges(add=frozenset(user_ids), display=labels)


def removing(*user_ids: str) -> MemberChanges:
    return MemberChanges(remove=frozenset(user_ids))


def scim_filter(kind: ResourceKind, text: str) -> FilterNode:
    """A filter parsed and checked against the resource schema, as the protocol layer does."""
    return ScimFilter[MODELS[kind]](text).ast  # type: ignore[valid-type]


def version(stored: Stored | Document) -> int:
    """The number of a weak ETag ``W/"n"`` (RFC 7644 section 3.14)."""
    tag = stored.version if isinstance(stored, Stored) else stored["meta"]["version"]
    match = _VERSION.fullmatch(tag)
    assert match is not None, f'{tag!r} is not a weak ETag W/"n"'
    return int(match.group(1))


def member_ids(backend: Backend, group_id: str) -> set[str]:
    document = backend.get(GROUP, group_id).document
    return {member["value"] for member in document.get("members", [])}


def member_labels(backend: Backend, group_id: str) -> dict[str, str]:
    document = backend.get(GROUP, group_id).document
    return {member["value"]: member["display"] for member in document.get("members", [])}


def group_ids_of(backend: Backend, user_id: str) -> set[str]:
    return {entry["value"] for entry in backend.get(USER, user_id).document.get("groups", [])}


def user_names(backend: Backend, **query: Any) -> list[str]:
    page = backend.list(USER, ListQuery(**query))
    return [document["userName"] for document in page.resources]


class BackendContract:
    """The rules every :class:`scim.backend.Backend` follows, whatever keeps the data."""

    tenants: ClassVar[bool] = True
    """The backend is bound to one tenant among several (an organization).

    Another tenant's resources then answer ``NotFoundException`` and are no
    valid members. Set it to False for a backend with a single tenant.
    """

    observable_storage: ClassVar[bool] = True
    """The ``probe`` fixture can watch what the backend reads and writes.

    Set it to False for a backend that keeps nothing apart: an in-memory
    record holds its members and document together, so there is no separate
    load or write to observe; the tests then check what the answers show.
    """

    # -- fixtures an implementation gives ---------------------------------------------

    @pytest.fixture
    def open_backend(self) -> OpenBackend:
        """Backends of one fresh, empty tenant: each call a new transaction."""
        raise NotImplementedError("a BackendContract subclass gives open_backend")

    @pytest.fixture
    def open_other_tenant(self) -> OpenBackend:
        """Backends of another fresh tenant (when :attr:`tenants`)."""
        raise NotImplementedError("a BackendContract subclass with tenants gives open_other_tenant")

    @pytest.fixture
    def probe(self) -> StorageProbe:
        """Watches the backend (when :attr:`observable_storage`)."""
        raise NotImplementedError("a BackendContract subclass with observable storage gives probe")

    # -- fixtures the scenarios build on ------------------------------------------------

    @pytest.fixture
    def backend(self, open_backend: OpenBackend) -> Backend:
        return open_backend()

    @pytest.fixture
    def people(self, backend: Backend) -> dict[str, str]:
        """Three users, by userName: the ids of ada, grace and linus."""
        return {
            name: backend.create(USER, user(name, displayName=name.title())).id
            for name in ("ada", "grace", "linus")
        }

    @pytest.fixture
    def engineering(self, backend: Backend, people: dict[str, str]) -> Stored:
        """A group of ada and grace, as an IdP pushes it: created, then members added."""
        created = backend.create(GROUP, group("Engineering", externalId="okta-00g1"))
        return backend.update_members(created.id, adding(people["ada"], people["grace"]))

    @staticmethod
    def require(capable: bool, reason: str) -> None:
        if not capable:
            pytest.skip(reason)

    def watch(self, request: pytest.FixtureRequest) -> AbstractContextManager[Observed]:
        self.require(self.observable_storage, "this backend's storage cannot be watched")
        probe: StorageProbe = request.getfixturevalue("probe")
        return probe.watch()

    def other_tenant(self, request: pytest.FixtureRequest) -> OpenBackend:
        self.require(self.tenants, "this backend serves a single tenant")
        opened: OpenBackend = request.getfixturevalue("open_other_tenant")
        return opened

    # -- create (RFC 7644 section 3.3) ------------------------------------------------

    def test_create_assigns_an_id_and_meta(self, backend: Backend) -> None:
        created = backend.create(USER, user("ada@example.com", externalId="00u1"))

        assert created.id
        assert created.version == 'W/"1"'
        document = created.document
        assert document["id"] == created.id
        assert document["userName"] == "ada@example.com"
        assert document["externalId"] == "00u1"
        meta = document["meta"]
        assert meta["resourceType"] == "User"
        assert meta["version"] == 'W/"1"'
        assert meta["created"] == meta["lastModified"]
        assert "location" not in meta

    def test_created_resources_get_distinct_ids(self, backend: Backend) -> None:
        ids = {backend.create(USER, user(f"user{n}")).id for n in range(3)}
        ids.add(backend.create(GROUP, group("Engineering")).id)

        assert len(ids) == 4

    def test_get_reads_back_what_create_stored(self, backend: Backend) -> None:
        sent = user(
            "ada@example.com",
            name={"givenName": "Ada", "familyName": "Lovelace"},
            emails=[{"value": "ada@example.com", "type": "work", "primary": True}],
            active=True,
        )
        created = backend.create(USER, sent)

        read = backend.get(USER, created.id)
        assert read.version == created.version
        assert read.document["name"] == sent["name"]
        assert read.document["emails"] == sent["emails"]
        assert read.document["active"] is True
        assert read.document["meta"] == created.document["meta"]

    def test_a_taken_user_name_is_refused_whatever_its_case(self, backend: Backend) -> None:
        backend.create(USER, user("ada@example.com"))

        with pytest.raises(UniquenessException):
            backend.create(USER, user("ADA@Example.com"))
        assert user_names(backend) == ["ada@example.com"]

    def test_a_taken_group_name_is_refused_whatever_its_case(self, backend: Backend) -> None:
        backend.create(GROUP, group("Engineering"))

        with pytest.raises(UniquenessException):
            backend.create(GROUP, group("ENGINEERING"))
        assert backend.list(GROUP, ListQuery()).total == 1

    def test_a_user_and_a_group_may_share_a_name(self, backend: Backend) -> None:
        backend.create(USER, user("support"))
        backend.create(GROUP, group("support"))

        assert backend.list(GROUP, ListQuery()).total == 1

    def test_a_refused_create_leaves_the_backend_usable(self, backend: Backend) -> None:
        backend.create(USER, user("ada"))
        with pytest.raises(UniquenessException):
            backend.create(USER, user("Ada"))

        backend.create(USER, user("grace"))
        backend.commit()
        assert sorted(user_names(backend)) == ["ada", "grace"]

    def test_a_group_is_created_with_its_members(
        self, backend: Backend, people: dict[str, str]
    ) -> None:
        """A POST of a group with members: the members travel as a delta beside the document."""
        ada, grace = people["ada"], people["grace"]

        created = backend.create(GROUP, group("Engineering"), adding(ada, grace, **{ada: "Ada L."}))

        assert created.version == 'W/"1"'
        shown = {member["value"]: member for member in created.document["members"]}
        assert set(shown) == {ada, grace}
        assert shown[ada]["display"] == "Ada L."
        assert shown[grace]["display"] == "Grace"
        assert member_ids(backend, created.id) == {ada, grace}
        assert group_ids_of(backend, ada) == {created.id}

    def test_a_group_with_an_unknown_member_is_not_created(
        self, backend: Backend, people: dict[str, str]
    ) -> None:
        with pytest.raises(InvalidValueException) as refused:
            backend.create(GROUP, group("Engineering"), adding(people["ada"], "no-such-user"))

        assert "no-such-user" in str(refused.value.detail)
        assert backend.list(GROUP, ListQuery()).total == 0
        assert group_ids_of(backend, people["ada"]) == set()

    # -- get (RFC 7644 section 3.4.1) -------------------------------------------------

    def test_an_unknown_id_is_not_found(self, backend: Backend) -> None:
        for unknown in ("2819c223-7f76-453a-919d-413861904646", "", "x" * 200, "é'\";--"):
            with pytest.raises(NotFoundException):
                backend.get(USER, unknown)

    def test_a_resource_is_found_under_its_own_kind_only(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        with pytest.raises(NotFoundException):
            backend.get(GROUP, people["ada"])
        with pytest.raises(NotFoundException):
            backend.get(USER, engineering.id)

    def test_a_group_is_read_with_its_members_and_a_user_with_its_groups(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        members = backend.get(GROUP, engineering.id).document["members"]
        assert sorted(member["value"] for member in members) == sorted(
            [people["ada"], people["grace"]]
        )
        assert all(member["type"] == "User" for member in members)

        groups = backend.get(USER, people["ada"]).document["groups"]
        assert groups == [{"value": engineering.id, "display": "Engineering", "type": "direct"}]
        assert "groups" not in backend.get(USER, people["linus"]).document

    def test_without_members_a_get_shows_none(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        read = backend.get(GROUP, engineering.id, include_members=False)

        assert "members" not in read.document
        assert read.version == engineering.version
        assert "groups" not in backend.get(USER, people["ada"], include_members=False).document

    def test_without_members_a_get_does_not_load_them(
        self,
        backend: Backend,
        people: dict[str, str],
        engineering: Stored,
        request: pytest.FixtureRequest,
    ) -> None:
        with self.watch(request) as seen:
            backend.get(GROUP, engineering.id, include_members=False)
            backend.get(USER, people["ada"], include_members=False)
        assert seen.member_reads == 0

        with self.watch(request) as seen:
            backend.get(GROUP, engineering.id)
        assert seen.member_reads > 0, "the probe sees a load when members are asked for"

    # -- list (RFC 7644 sections 3.4.2 and 3.4.3) --------------------------------------

    def test_list_returns_one_kind_and_counts_it(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        page = backend.list(USER, ListQuery())

        assert page.total == 3
        assert sorted(document["userName"] for document in page.resources) == [
            "ada",
            "grace",
            "linus",
        ]
        assert all(document["meta"]["resourceType"] == "User" for document in page.resources)

    def test_a_filter_keeps_the_matches_and_the_total_counts_them_only(
        self, backend: Backend, people: dict[str, str]
    ) -> None:
        """``userName`` is not caseExact (RFC 7643 section 4.1.1): its filter ignores case."""
        page = backend.list(USER, ListQuery(filter=scim_filter(USER, 'userName eq "GRACE"')))

        assert page.total == 1
        assert [document["id"] for document in page.resources] == [people["grace"]]

    def test_a_filter_that_matches_nothing(self, backend: Backend, people: dict[str, str]) -> None:
        page = backend.list(USER, ListQuery(filter=scim_filter(USER, 'userName eq "nobody"')))

        assert page.total == 0
        assert page.resources == []

    def test_a_filter_on_a_group_attribute(self, backend: Backend, engineering: Stored) -> None:
        backend.create(GROUP, group("Sales"))

        page = backend.list(
            GROUP,
            ListQuery(filter=scim_filter(GROUP, 'displayName sw "eng" and externalId pr')),
        )

        assert [document["id"] for document in page.resources] == [engineering.id]

    def test_the_groups_of_a_member_are_found_by_filter(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        """How Entra and Okta look up a user's groups (``members.value eq``)."""
        backend.create(GROUP, group("Sales"), adding(people["linus"]))

        query = ListQuery(filter=scim_filter(GROUP, f'members.value eq "{people["ada"]}"'))
        page = backend.list(GROUP, query)

        assert page.total == 1
        assert page.resources[0]["id"] == engineering.id

    def test_sorted_ascending_and_descending(
        self, backend: Backend, people: dict[str, str]
    ) -> None:
        backend.create(USER, user("bob"))

        assert user_names(backend, sort=SortKey("userName")) == ["ada", "bob", "grace", "linus"]
        assert user_names(backend, sort=SortKey("userName", descending=True)) == [
            "linus",
            "grace",
            "bob",
            "ada",
        ]

    def test_a_page_holds_count_from_start_index_and_the_total_counts_every_match(
        self, backend: Backend, people: dict[str, str]
    ) -> None:
        backend.create(USER, user("bob"))
        by_name = SortKey("userName")

        second = backend.list(USER, ListQuery(sort=by_name, start_index=2, count=2))

        assert second.total == 4
        assert [document["userName"] for document in second.resources] == ["bob", "grace"]
        last = backend.list(USER, ListQuery(sort=by_name, start_index=4, count=2))
        assert last.total == 4
        assert [document["userName"] for document in last.resources] == ["linus"]

    def test_pages_without_sort_cover_every_resource_once(
        self, backend: Backend, people: dict[str, str]
    ) -> None:
        for name in ("bob", "carol"):
            backend.create(USER, user(name))

        seen = [
            name for start in (1, 3, 5) for name in user_names(backend, start_index=start, count=2)
        ]

        assert sorted(seen) == ["ada", "bob", "carol", "grace", "linus"]

    def test_a_page_past_the_end_is_empty_and_still_counts(
        self, backend: Backend, people: dict[str, str]
    ) -> None:
        page = backend.list(USER, ListQuery(start_index=10, count=5))

        assert page.total == 3
        assert page.resources == []

    def test_count_zero_answers_the_total_alone(
        self, backend: Backend, people: dict[str, str]
    ) -> None:
        """RFC 7644 section 3.4.2.4: ``count=0`` asks for ``totalResults`` only."""
        page = backend.list(USER, ListQuery(count=0))

        assert page.total == 3
        assert page.resources == []

    def test_a_filtered_page_counts_every_match(self, backend: Backend) -> None:
        for n in range(5):
            backend.create(USER, user(f"contractor{n}", title="Contractor"))
        backend.create(USER, user("employee", title="Engineer"))

        page = backend.list(
            USER, ListQuery(filter=scim_filter(USER, 'title eq "Contractor"'), count=2)
        )

        assert page.total == 5
        assert len(page.resources) == 2

    def test_a_list_shows_memberships_unless_excluded(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        (listed,) = backend.list(GROUP, ListQuery()).resources
        assert len(listed["members"]) == 2
        users = backend.list(USER, ListQuery(filter=scim_filter(USER, 'userName eq "ada"')))
        assert [entry["value"] for entry in users.resources[0]["groups"]] == [engineering.id]

        (bare,) = backend.list(GROUP, ListQuery(include_members=False)).resources
        assert "members" not in bare
        assert all(
            "groups" not in document
            for document in backend.list(USER, ListQuery(include_members=False)).resources
        )

    def test_a_list_without_members_does_not_load_them(
        self,
        backend: Backend,
        people: dict[str, str],
        engineering: Stored,
        request: pytest.FixtureRequest,
    ) -> None:
        with self.watch(request) as seen:
            backend.list(GROUP, ListQuery(include_members=False))
            backend.list(USER, ListQuery(include_members=False))
        assert seen.member_reads == 0

        with self.watch(request) as seen:
            backend.list(USER, ListQuery())
        assert seen.member_reads > 0, "the probe sees a load when members are asked for"

    # -- replace (RFC 7644 sections 3.5.1 and 3.5.2) ----------------------------------

    def test_a_replace_stores_the_new_attributes_and_bumps_the_version(
        self, backend: Backend
    ) -> None:
        created = backend.create(USER, user("ada", title="Analyst", nickName="Ada"))

        replaced = backend.replace(USER, created.id, user("ada", title="Engineer", active=False))

        assert replaced.version == 'W/"2"'
        assert replaced.document["meta"]["version"] == 'W/"2"'
        read = backend.get(USER, created.id).document
        assert read["title"] == "Engineer"
        assert read["active"] is False
        assert "nickName" not in read
        assert read["meta"]["created"] == created.document["meta"]["created"]
        assert read["meta"]["lastModified"] >= read["meta"]["created"]

    def test_a_replace_at_the_current_version_succeeds(self, backend: Backend) -> None:
        created = backend.create(USER, user("ada"))

        backend.replace(
            USER, created.id, user("ada", title="CTO"), expected_version=created.version
        )

        assert backend.get(USER, created.id).document["title"] == "CTO"

    def test_a_replace_at_a_stale_version_writes_nothing(self, backend: Backend) -> None:
        created = backend.create(USER, user("ada", title="Analyst"))
        backend.replace(USER, created.id, user("ada", title="Engineer"))

        with pytest.raises(PreconditionFailedException):
            backend.replace(
                USER, created.id, user("ada", title="CTO"), expected_version=created.version
            )

        read = backend.get(USER, created.id)
        assert read.document["title"] == "Engineer"
        assert read.version == 'W/"2"'

    def test_a_replace_of_an_unknown_resource_is_not_found(self, backend: Backend) -> None:
        with pytest.raises(NotFoundException):
            backend.replace(USER, "2819c223-7f76-453a-919d-413861904646", user("ada"))

    def test_a_rename_to_a_taken_name_is_refused(self, backend: Backend) -> None:
        backend.create(USER, user("ada"))
        grace = backend.create(USER, user("grace"))

        with pytest.raises(UniquenessException):
            backend.replace(USER, grace.id, user("ADA"))

        assert backend.get(USER, grace.id).document["userName"] == "grace"
        backend.replace(USER, grace.id, user("Grace"))
        assert backend.get(USER, grace.id).document["userName"] == "Grace"

    def test_a_group_replace_without_members_leaves_its_membership(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        replaced = backend.replace(GROUP, engineering.id, group("Platform Engineering"))

        assert version(replaced) == version(engineering) + 1
        assert member_ids(backend, engineering.id) == {people["ada"], people["grace"]}
        assert backend.get(GROUP, engineering.id).document["displayName"] == "Platform Engineering"
        assert backend.get(USER, people["ada"]).document["groups"][0]["display"] == (
            "Platform Engineering"
        )

    def test_a_group_replace_with_a_member_set_replaces_the_membership(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        """A PUT with members: the new set, whatever was stored (RFC 7644 section 3.5.1)."""
        new_set = MemberChanges(replace=frozenset({people["grace"], people["linus"]}))

        backend.replace(GROUP, engineering.id, group("Engineering"), new_set)

        assert member_ids(backend, engineering.id) == {people["grace"], people["linus"]}
        assert group_ids_of(backend, people["ada"]) == set()

    def test_a_group_renamed_to_a_taken_name_is_refused(
        self, backend: Backend, engineering: Stored
    ) -> None:
        backend.create(GROUP, group("Sales"))

        with pytest.raises(UniquenessException):
            backend.replace(GROUP, engineering.id, group("sales"))
        assert backend.get(GROUP, engineering.id).document["displayName"] == "Engineering"

    def test_a_group_replace_naming_an_unknown_member_writes_nothing(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        new_set = MemberChanges(replace=frozenset({people["linus"], "no-such-user"}))

        with pytest.raises(InvalidValueException) as refused:
            backend.replace(GROUP, engineering.id, group("Renamed"), new_set)

        assert "no-such-user" in str(refused.value.detail)
        read = backend.get(GROUP, engineering.id)
        assert read.document["displayName"] == "Engineering"
        assert read.version == engineering.version
        assert member_ids(backend, engineering.id) == {people["ada"], people["grace"]}

    # -- update_members (RFC 7644 section 3.5.2) --------------------------------------

    def test_members_are_added_in_batches(self, backend: Backend, people: dict[str, str]) -> None:
        """Okta pushes a group, then its members a few at a time."""
        created = backend.create(GROUP, group("Engineering"))

        backend.update_members(created.id, adding(people["ada"]))
        backend.update_members(created.id, adding(people["grace"], people["linus"]))

        assert member_ids(backend, created.id) == set(people.values())

    def test_a_member_update_bumps_the_version_and_answers_without_members(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        updated = backend.update_members(engineering.id, adding(people["linus"]))

        assert updated.id == engineering.id
        assert version(updated) == version(engineering) + 1
        assert updated.document["meta"]["version"] == updated.version
        assert "members" not in updated.document
        assert backend.get(GROUP, engineering.id).version == updated.version

    def test_a_member_update_leaves_the_group_document_as_it_was(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        updated = backend.update_members(engineering.id, removing(people["ada"]))

        read = backend.get(GROUP, engineering.id, include_members=False).document
        assert read["displayName"] == "Engineering"
        assert read["externalId"] == "okta-00g1"
        assert read["meta"]["created"] == engineering.document["meta"]["created"]
        assert read["meta"]["lastModified"] >= engineering.document["meta"]["lastModified"]
        assert updated.document["displayName"] == "Engineering"

    def test_a_member_update_does_not_rewrite_the_group_document(
        self,
        backend: Backend,
        people: dict[str, str],
        engineering: Stored,
        request: pytest.FixtureRequest,
    ) -> None:
        with self.watch(request) as seen:
            backend.update_members(engineering.id, adding(people["linus"]))
            backend.update_members(engineering.id, removing(people["ada"]))
        assert seen.document_writes == 0

        with self.watch(request) as seen:
            backend.replace(GROUP, engineering.id, group("Platform"))
        assert seen.document_writes > 0, "the probe sees a replace write the document"

    def test_entra_adds_and_removes_in_one_delta(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        delta = MemberChanges(add=frozenset({people["linus"]}), remove=frozenset({people["ada"]}))

        backend.update_members(engineering.id, delta)

        assert member_ids(backend, engineering.id) == {people["grace"], people["linus"]}

    def test_adding_a_present_member_or_removing_an_absent_one_changes_nothing(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        backend.update_members(engineering.id, adding(people["ada"]))
        backend.update_members(engineering.id, removing(people["linus"], "no-such-user"))

        assert member_ids(backend, engineering.id) == {people["ada"], people["grace"]}

    def test_remove_all_then_add_keeps_only_the_added(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        """``remove_all`` applies before ``add`` (MemberChanges): a PATCH remove of
        ``members`` followed by an add in the same request."""
        delta = MemberChanges(remove_all=True, add=frozenset({people["ada"]}))

        backend.update_members(engineering.id, delta)

        assert member_ids(backend, engineering.id) == {people["ada"]}

    def test_the_order_is_replace_remove_all_remove_add(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        ada, grace, linus = people["ada"], people["grace"], people["linus"]

        replace_then_remove_then_add = MemberChanges(
            replace=frozenset({ada, linus}), remove=frozenset({ada}), add=frozenset({grace})
        )
        backend.update_members(engineering.id, replace_then_remove_then_add)
        assert member_ids(backend, engineering.id) == {grace, linus}

        replace_then_remove_all = MemberChanges(replace=frozenset({ada}), remove_all=True)
        backend.update_members(engineering.id, replace_then_remove_all)
        assert member_ids(backend, engineering.id) == set()

        remove_then_add_back = MemberChanges(remove=frozenset({ada}), add=frozenset({ada}))
        backend.update_members(engineering.id, remove_then_add_back)
        assert member_ids(backend, engineering.id) == {ada}

    def test_unknown_members_are_refused_by_name_and_nothing_is_written(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        delta = adding(people["linus"], "no-such-user", "nor-this-one")

        with pytest.raises(InvalidValueException) as refused:
            backend.update_members(engineering.id, delta)

        assert "no-such-user" in str(refused.value.detail)
        assert "nor-this-one" in str(refused.value.detail)
        assert member_ids(backend, engineering.id) == {people["ada"], people["grace"]}

    def test_a_refused_member_update_in_a_savepoint_leaves_the_group_as_it_was(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        """One Bulk operation (RFC 7644 section 3.7): its savepoint undoes all it did."""
        with pytest.raises(InvalidValueException), backend.savepoint():
            backend.update_members(engineering.id, adding(people["linus"], "no-such-user"))

        assert backend.get(GROUP, engineering.id).version == engineering.version
        assert member_ids(backend, engineering.id) == {people["ada"], people["grace"]}

    def test_a_group_is_not_a_member(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        sales = backend.create(GROUP, group("Sales"))

        with pytest.raises(InvalidValueException):
            backend.update_members(engineering.id, adding(sales.id))
        with pytest.raises(InvalidValueException):
            backend.update_members(engineering.id, MemberChanges(replace=frozenset({sales.id})))
        assert member_ids(backend, engineering.id) == {people["ada"], people["grace"]}

    def test_a_member_update_at_a_stale_version_writes_nothing(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        stale = engineering.version
        current = backend.update_members(engineering.id, adding(people["linus"]))

        with pytest.raises(PreconditionFailedException):
            backend.update_members(engineering.id, removing(people["ada"]), expected_version=stale)

        assert backend.get(GROUP, engineering.id).version == current.version
        assert member_ids(backend, engineering.id) == set(people.values())
        backend.update_members(
            engineering.id, removing(people["ada"]), expected_version=current.version
        )
        assert people["ada"] not in member_ids(backend, engineering.id)

    def test_a_version_never_issued_is_stale_and_not_an_error(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        """Whatever a client puts in ``If-Match``, the answer is 412, never a crash."""
        for never in ('W/"99999999999999999999"', 'W/"0"', '"abc"'):
            with pytest.raises(PreconditionFailedException):
                backend.update_members(
                    engineering.id, adding(people["linus"]), expected_version=never
                )
            with pytest.raises(PreconditionFailedException):
                backend.replace(USER, people["ada"], user("ada"), expected_version=never)
            with pytest.raises(PreconditionFailedException):
                backend.delete(USER, people["ada"], expected_version=never)

        assert backend.get(GROUP, engineering.id).version == engineering.version
        assert member_ids(backend, engineering.id) == {people["ada"], people["grace"]}

    def test_members_of_an_unknown_group_are_not_found(
        self, backend: Backend, people: dict[str, str]
    ) -> None:
        with pytest.raises(NotFoundException):
            backend.update_members("2819c223-7f76-453a-919d-413861904646", adding(people["ada"]))
        with pytest.raises(NotFoundException):
            backend.update_members(people["grace"], adding(people["ada"]))

    # -- member labels (RFC 7643 section 4.2 members.display) -------------------------

    def test_a_member_shows_its_label_else_the_user_display_name_else_user_name(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        nameless = backend.create(USER, user("ken@example.com")).id

        backend.update_members(
            engineering.id,
            adding(
                people["linus"],
                nameless,
                **{
                    people["linus"]: "Linus T.",
                },
            ),
        )

        assert member_labels(backend, engineering.id) == {
            people["ada"]: "Ada",
            people["grace"]: "Grace",
            people["linus"]: "Linus T.",
            nameless: "ken@example.com",
        }

    def test_an_add_with_a_label_relabels_and_without_one_keeps_it(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        ada = people["ada"]

        backend.update_members(engineering.id, adding(ada, **{ada: "Countess of Lovelace"}))
        assert member_labels(backend, engineering.id)[ada] == "Countess of Lovelace"

        backend.update_members(engineering.id, adding(ada))
        assert member_labels(backend, engineering.id)[ada] == "Countess of Lovelace"

    def test_a_replacement_keeps_exactly_the_labels_sent(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        ada, grace = people["ada"], people["grace"]
        backend.update_members(engineering.id, adding(ada, grace, **{ada: "A.", grace: "G."}))

        new_set = MemberChanges(replace=frozenset({ada, grace}), display={grace: "Rear Admiral"})
        backend.update_members(engineering.id, new_set)

        assert member_labels(backend, engineering.id) == {ada: "Ada", grace: "Rear Admiral"}

    # -- delete (RFC 7644 section 3.6) ------------------------------------------------

    def test_a_deleted_resource_is_gone(self, backend: Backend, people: dict[str, str]) -> None:
        backend.delete(USER, people["linus"])

        with pytest.raises(NotFoundException):
            backend.get(USER, people["linus"])
        with pytest.raises(NotFoundException):
            backend.delete(USER, people["linus"])
        assert backend.list(USER, ListQuery()).total == 2

    def test_deleting_an_unknown_resource_is_not_found(
        self, backend: Backend, engineering: Stored
    ) -> None:
        with pytest.raises(NotFoundException):
            backend.delete(USER, "2819c223-7f76-453a-919d-413861904646")
        with pytest.raises(NotFoundException):
            backend.delete(USER, engineering.id)

    def test_a_deleted_user_leaves_its_groups(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        """A leaver deleted by the IdP is no member of anything (docs/rules.md#leavers)."""
        backend.delete(USER, people["ada"])

        assert member_ids(backend, engineering.id) == {people["grace"]}
        page = backend.list(
            GROUP, ListQuery(filter=scim_filter(GROUP, f'members.value eq "{people["ada"]}"'))
        )
        assert page.total == 0

    def test_a_deleted_group_leaves_its_members(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        backend.delete(GROUP, engineering.id)

        assert group_ids_of(backend, people["ada"]) == set()
        assert backend.list(USER, ListQuery()).total == 3

    def test_a_delete_at_a_stale_version_keeps_the_resource(
        self, backend: Backend, people: dict[str, str], engineering: Stored
    ) -> None:
        current = backend.update_members(engineering.id, adding(people["linus"]))

        with pytest.raises(PreconditionFailedException):
            backend.delete(GROUP, engineering.id, expected_version=engineering.version)
        assert member_ids(backend, engineering.id) == set(people.values())

        backend.delete(GROUP, engineering.id, expected_version=current.version)
        with pytest.raises(NotFoundException):
            backend.get(GROUP, engineering.id)

    # -- transactions -----------------------------------------------------------------

    def test_a_commit_is_seen_by_the_next_transaction(
        self, backend: Backend, open_backend: OpenBackend, people: dict[str, str]
    ) -> None:
        created = backend.create(GROUP, group("Engineering"), adding(people["ada"]))
        backend.commit()

        later = open_backend()
        assert later.get(GROUP, created.id).version == created.version
        assert member_ids(later, created.id) == {people["ada"]}

    def test_a_rollback_forgets_every_change(
        self, backend: Backend, open_backend: OpenBackend, people: dict[str, str]
    ) -> None:
        backend.commit()
        backend.create(USER, user("bob"))
        backend.delete(USER, people["ada"])
        backend.rollback()

        assert sorted(user_names(backend)) == ["ada", "grace", "linus"]
        backend.rollback()
        assert sorted(user_names(open_backend())) == ["ada", "grace", "linus"]

    def test_a_failed_savepoint_rolls_back_alone(
        self, backend: Backend, open_backend: OpenBackend, people: dict[str, str]
    ) -> None:
        """A Bulk request (RFC 7644 section 3.7): each operation in its own savepoint."""
        with backend.savepoint():
            first = backend.create(GROUP, group("Engineering"), adding(people["ada"]))

        def failing_operation() -> None:
            with backend.savepoint():
                backend.update_members(first.id, adding(people["grace"]))
                backend.create(USER, user("bob"))
                backend.create(USER, user("ADA"))

        with pytest.raises(UniquenessException):
            failing_operation()
        with backend.savepoint():
            backend.create(USER, user("bob"))
        backend.commit()

        later = open_backend()
        assert sorted(user_names(later)) == ["ada", "bob", "grace", "linus"]
        assert member_ids(later, first.id) == {people["ada"]}
        assert later.get(GROUP, first.id).version == first.version

    def test_a_savepoint_lets_any_error_through(self, backend: Backend) -> None:
        def failing_operation() -> None:
            with backend.savepoint():
                backend.create(USER, user("ada"))
                raise RuntimeError("the operation failed")

        with pytest.raises(RuntimeError, match="the operation failed"):
            failing_operation()

        assert backend.list(USER, ListQuery()).total == 0

    # -- tenants ----------------------------------------------------------------------

    @pytest.fixture
    def neighbour(self, request: pytest.FixtureRequest) -> dict[str, str]:
        """Another tenant's user and group, committed: the ids of ``user`` and ``group``."""
        other = self.other_tenant(request)()
        their_user = other.create(USER, user("ada"))
        their_group = other.create(GROUP, group("Engineering"), adding(their_user.id))
        other.commit()
        return {"user": their_user.id, "group": their_group.id}

    def test_another_tenants_resources_are_not_found(
        self, backend: Backend, neighbour: dict[str, str]
    ) -> None:
        for kind, resource_id in ((USER, neighbour["user"]), (GROUP, neighbour["group"])):
            with pytest.raises(NotFoundException):
                backend.get(kind, resource_id)
            with pytest.raises(NotFoundException):
                backend.delete(kind, resource_id)
        with pytest.raises(NotFoundException):
            backend.replace(USER, neighbour["user"], user("ada"))
        with pytest.raises(NotFoundException):
            backend.replace(GROUP, neighbour["group"], group("Engineering"))
        with pytest.raises(NotFoundException):
            backend.update_members(neighbour["group"], removing(neighbour["user"]))

    def test_another_tenants_resources_are_not_listed_and_names_are_free(
        self, backend: Backend, neighbour: dict[str, str]
    ) -> None:
        assert backend.list(USER, ListQuery()).total == 0
        assert backend.list(GROUP, ListQuery()).total == 0

        ours = backend.create(USER, user("ADA"))
        backend.create(GROUP, group("engineering"))
        assert user_names(backend, filter=scim_filter(USER, 'userName eq "ada"')) == ["ADA"]
        assert ours.id != neighbour["user"]

    def test_another_tenants_user_is_no_member(
        self, backend: Backend, neighbour: dict[str, str]
    ) -> None:
        ours = backend.create(GROUP, group("Engineering"))

        with pytest.raises(InvalidValueException):
            backend.update_members(ours.id, adding(neighbour["user"]))
        with pytest.raises(InvalidValueException):
            backend.create(GROUP, group("Sales"), adding(neighbour["user"]))
        assert member_ids(backend, ours.id) == set()

    def test_another_tenants_data_stays_as_it_was(
        self,
        backend: Backend,
        neighbour: dict[str, str],
        request: pytest.FixtureRequest,
    ) -> None:
        ours = backend.create(USER, user("ada"))
        backend.delete(USER, ours.id)
        backend.commit()

        theirs = self.other_tenant(request)()
        assert member_ids(theirs, neighbour["group"]) == {neighbour["user"]}
