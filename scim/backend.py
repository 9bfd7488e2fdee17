"""The storage contract between the SCIM protocol layer and whatever keeps the data.

The protocol layer (:mod:`scim.blueprint`) parses and validates requests with
scim2-models, then calls one :class:`Backend` per request. A backend is bound
to one tenant and one database transaction; it never commits on its own. The
protocol layer calls :meth:`Backend.commit` once, after a mutating request has
fully succeeded, and :meth:`Backend.rollback` otherwise.

Documents cross this boundary as plain JSON-ready dicts in the SCIM wire form
(RFC 7643 section 2), with ``meta`` filled in by the backend. Group members
never travel inside a group document on writes: they travel as a
:class:`MemberChanges` delta so that a PATCH naming k members costs O(k)
(RFC 7644 section 3.5.2), whatever the size of the group.

Errors are scim2-models' :class:`scim2_models.SCIMException` subclasses
(``NotFoundException``, ``UniquenessException``, ``InvalidValueException``,
``PreconditionFailedException``...): a backend raises them and the protocol
layer turns them into SCIM Error documents (RFC 7644 section 3.12).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from scim2_models.path.expressions import FilterNode

Document = dict[str, Any]


class ResourceKind(StrEnum):
    """The resource types this service provider serves (RFC 7643 sections 4.1 and 4.2)."""

    USER = "User"
    GROUP = "Group"


@dataclass(frozen=True)
class SortKey:
    """``sortBy``/``sortOrder`` (RFC 7644 section 3.4.2.3), already resolved.

    ``attribute`` is the canonical attribute path, for example ``userName``,
    ``name.familyName``, ``emails.value``, ``meta.lastModified`` or a
    URN-qualified extension attribute.
    """

    attribute: str
    descending: bool = False


@dataclass(frozen=True)
class ListQuery:
    """One list or search request (RFC 7644 sections 3.4.2 and 3.4.3).

    ``filter`` is scim2-models' parsed filter tree, already validated against
    the resource schema; the backend turns it into a database query and never
    evaluates it over rows in memory. ``start_index`` is 1-based and ``count``
    already capped by the protocol layer. ``include_members`` is false when the
    client excluded ``members`` (a Group) or ``groups`` (a User): the backend
    must then not load them at all.
    """

    filter: FilterNode | None = None
    sort: SortKey | None = None
    start_index: int = 1
    count: int = 100
    include_members: bool = True


@dataclass(frozen=True)
class Page:
    """A page of results: ``total`` counts every match, not only this page."""

    total: int
    resources: list[Document]


@dataclass(frozen=True)
class MemberChanges:
    """A delta on a group's member set (RFC 7644 section 3.5.2).

    Applied in this order: ``replace`` (when not None, the whole new member
    set: the backend writes only the difference against what is stored), then
    ``remove_all``, then ``remove``, then ``add``. Adding a present member or
    removing an absent one is a no-op. Every id in ``add`` and ``replace`` must
    name a User of the same tenant, or the backend raises
    ``InvalidValueException`` naming it.

    ``display`` is the human-readable label the client sent for members of
    ``add`` or ``replace`` (RFC 7643 section 4.2 ``members.display``, not
    read-only), by member id. The backend stores it and returns it; a member
    without a stored label is shown with a name it computes from the User. A
    member of ``add`` with a label gets that label, present or not; without
    one, a present member keeps its own. Under ``replace``, each member ends
    with exactly the label given here, or none. Only the named members'
    labels are written: the work stays O(k).
    """

    add: frozenset[str] = field(default_factory=frozenset)
    remove: frozenset[str] = field(default_factory=frozenset)
    remove_all: bool = False
    replace: frozenset[str] | None = None
    display: Mapping[str, str] = field(default_factory=dict, hash=False)

    def is_empty(self) -> bool:
        return not (self.add or self.remove or self.remove_all or self.replace is not None)


@dataclass(frozen=True)
class Stored:
    """A resource as stored: its id, its weak ETag version and its SCIM document."""

    id: str
    version: str
    document: Document


class Backend(Protocol):
    """One tenant's SCIM data within one transaction.

    ``expected_version`` is the ``meta.version`` the caller last saw (from
    ``If-Match`` or from its own read before a PATCH): when given and not
    current, the backend raises ``PreconditionFailedException`` and writes
    nothing. This makes read-modify-write PATCHes safe under concurrency.
    """

    def get(self, kind: ResourceKind, resource_id: str, *, include_members: bool = True) -> Stored:
        """Return one resource or raise ``NotFoundException``."""
        ...

    def list(self, kind: ResourceKind, query: ListQuery) -> Page:
        """Return the filtered, sorted page and the total match count."""
        ...

    def create(
        self, kind: ResourceKind, document: Document, members: MemberChanges | None = None
    ) -> Stored:
        """Store a new resource; the backend assigns ``id`` and ``meta``.

        Raises ``UniquenessException`` when userName (User) or displayName
        (Group) is taken in the tenant, case-insensitively, also under a race.
        """
        ...

    def replace(
        self,
        kind: ResourceKind,
        resource_id: str,
        document: Document,
        members: MemberChanges | None = None,
        *,
        expected_version: str | None = None,
    ) -> Stored:
        """Replace a resource's attributes and apply a member delta, atomically.

        ``document`` carries every attribute but group members; ``members`` is
        None when membership does not change.
        """
        ...

    def update_members(
        self, group_id: str, members: MemberChanges, *, expected_version: str | None = None
    ) -> Stored:
        """Apply a member delta to a group whose other attributes do not change.

        The group document is neither read nor rewritten: only the member rows
        the delta names, and the group's ``meta.version`` and
        ``meta.lastModified`` (RFC 7644 section 3.5.2: a PATCH naming k members
        costs O(k)). Returns the group without its members.
        """
        ...

    def delete(
        self, kind: ResourceKind, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        """Remove a resource (and a user's memberships) or raise ``NotFoundException``."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: rolled back alone if the block raises (one Bulk operation)."""
        ...

    def commit(self) -> None:
        """Make every change of this request durable."""
        ...

    def rollback(self) -> None:
        """Forget every change of this request."""
        ...


class BackendProvider(Protocol):
    """Gives the protocol layer the backend of the authenticated tenant of this request."""

    def __call__(self) -> Backend: ...


def iter_member_ids(document: Document) -> Iterator[str]:
    """The ``value`` of each entry of a group document's ``members`` (RFC 7643 section 4.2)."""
    for member in document.get("members") or []:
        if isinstance(member, dict) and isinstance(member.get("value"), str):
            yield member["value"]
