"""One organization's SCIM directory in SQL: :class:`DirectoryStore` and :class:`SqlBackend`.

:class:`DirectoryStore` keeps the directory and reports exactly what each
write changed (:class:`Written`, :class:`Deleted`): the documents before and
after, and the members who joined or left. It knows nothing of Hub access:
the provisioning write path (:mod:`connector.provisioning`) calls it and acts
on those reports. :class:`SqlBackend` is the same store seen through the
protocol layer's contract (:class:`scim.backend.Backend`), for a directory
that nothing follows.

What the store keeps and returns (RFC 7643 section 3.1):

- the document exactly as given, minus ``id``, ``meta``, ``members`` /
  ``groups`` (kept as ``group_members`` rows) and ``password`` (write-only,
  never returned; Hub does not authenticate users with it);
- ``id`` (a uuid4) and ``meta`` with ``resourceType``, ``created``,
  ``lastModified`` and ``version`` (a weak ETag ``W/"<n>"``, bumped on every
  write, membership changes included). ``meta.location`` is left to the
  protocol layer, which knows the base URL;
- Users' ``groups`` (``value``, ``display``, ``type: direct``) and Groups'
  ``members`` (``value``, ``display`` = the label the client sent, else the
  user's displayName, else userName; ``type: User``), both without ``$ref``,
  read in one query per page, and not read at all when ``include_members`` is
  false. ``create`` returns a group with the members it was created with;
  ``replace`` returns a group WITHOUT its members (a PATCH must stay O(k)),
  the caller reads them with ``get`` when it has to show them.

Uniqueness (RFC 7644 section 3.3): a create is ``INSERT ... ON CONFLICT
(org_id, kind, name_key) DO NOTHING RETURNING id`` (no row back: 409), which
also settles racing creates without a SAVEPOINT round trip; a replace that
changes the name runs its UPDATE in a SAVEPOINT and turns the unique
violation into a 409. Either way the request's transaction stays usable.

Versions (RFC 7644 section 3.14): the row is read ``FOR UPDATE`` and
updated ``WHERE version = <read version>``; ``expected_version`` may be
``W/"n"``, ``"n"`` or ``*``. Single rows are read by primary key alone and
their tenant checked on the row, so no planner ever prefers a tenant-wide
index for them.

Deleting a user removes its memberships without bumping the groups'
versions: taking those groups' locks while holding the user's could deadlock
with a concurrent PATCH adding the user to one of them.

Row locks: a replace takes its row ``FOR NO KEY UPDATE`` (the key does not
change, so concurrent membership inserts, whose foreign-key checks take
``FOR KEY SHARE`` on the user, are not blocked); a delete takes ``FOR UPDATE``.
"""

from __future__ import annotations

import builtins
import functools
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scim2_models import (
    InvalidValueException,
    NotFoundException,
    PreconditionFailedException,
    Resource,
    UniquenessException,
)
from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    Row,
    Select,
    String,
    Text,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.db import dialect as sql
from connector.db.base import utcnow
from connector.directory.filters import (
    FilterCompiler,
    creation_order,
    selects_at_most_one,
    sort_order,
)
from connector.directory.indexing import (
    ResourceColumns,
    check_storable,
    resource_columns,
    storable,
    stored_document,
    value_rows,
)
from connector.directory.listings import listing_parameters, listing_where, prepared_listing
from connector.directory.members import apply_member_changes, check_member_ids
from connector.directory.tables import ATTRIBUTE_VALUES, GROUP_MEMBERS, RESOURCES
from scim.attributes import resolve_attribute
from scim.backend import Document, ListQuery, MemberChanges, Page, ResourceKind, Stored
from scim.resources import MEMBERSHIP_ATTRIBUTE, MODELS, NAME_ATTRIBUTE

DEFAULT_MODELS: dict[ResourceKind, type[Resource[Any]]] = dict(MODELS)
"""The resource models the store indexes documents and resolves filters against:
the ones the protocol layer serves (:data:`scim.resources.MODELS`)."""

ResourceRow = Row[*tuple[Any, ...]]
"""A row of ``scim_resources`` columns, as the store reads them."""

_AnySelect = Select[*tuple[Any, ...]]
"""A SELECT of rows of any columns."""

_ETAG = re.compile(r'\s*(?:W/)?"?(\d+)"?\s*')
_MAX_VERSION = 2**31 - 1
_UNIQUE_CONSTRAINT = "uq_scim_resources_name"

_RESOURCES = RESOURCES
_VALUES = ATTRIBUTE_VALUES
_MEMBERS = GROUP_MEMBERS

_VALUE_COLUMNS = (
    "resource_id",
    "org_id",
    "path",
    "element",
    "value_text",
    "value_key",
    "value_number",
    "value_bool",
    "value_time",
)
_VALUE_ARRAY_TYPES: dict[str, ARRAY[Any]] = {
    "resource_id": ARRAY(String()),
    "org_id": ARRAY(Integer()),
    "path": ARRAY(String()),
    "element": ARRAY(Integer()),
    "value_text": ARRAY(Text()),
    "value_key": ARRAY(String()),
    "value_number": ARRAY(Float()),
    "value_bool": ARRAY(Boolean()),
    "value_time": ARRAY(DateTime(timezone=True)),
}
_RESOURCE_COLUMNS = (
    _RESOURCES.c.id,
    _RESOURCES.c.name_key,
    _RESOURCES.c.document,
    _RESOURCES.c.version,
    _RESOURCES.c.created_at,
    _RESOURCES.c.modified_at,
)

# By primary key alone, tenant and kind checked on the one row: no planner,
# with or without statistics, can then prefer a tenant-wide index.
_ROW_BY_ID = select(*_RESOURCE_COLUMNS, _RESOURCES.c.org_id, _RESOURCES.c.kind).where(
    _RESOURCES.c.id == bindparam("resource_id")
)
_ROW_BY_ID_FOR_UPDATE = _ROW_BY_ID.with_for_update(key_share=True)
_ROW_BY_ID_FOR_DELETE = _ROW_BY_ID.with_for_update()

# A members-only write bumps the group's version and reads back what the
# answer needs, in one statement that also locks the row.
_BUMP_GROUP = (
    update(_RESOURCES)
    .where(
        _RESOURCES.c.id == bindparam("group_id"),
        _RESOURCES.c.org_id == bindparam("group_org_id"),
        _RESOURCES.c.kind == ResourceKind.GROUP.value,
    )
    .values(version=_RESOURCES.c.version + 1, modified_at=bindparam("now"))
    .returning(*_RESOURCE_COLUMNS)
)
# The same, only from the version the caller last saw: a stale one bumps nothing.
_BUMP_GROUP_AT_VERSION = _BUMP_GROUP.where(_RESOURCES.c.version == bindparam("expected"))


def _paged(statement: _AnySelect) -> _AnySelect:
    """``statement`` with OFFSET ``page_offset`` and LIMIT ``page_limit``, bound at execution.

    64-bit: ``startIndex`` may go up to 2**63 - 1 (RFC 7644 section 3.4.2.4 sets no bound).
    """
    return statement.offset(bindparam("page_offset", type_=BigInteger())).limit(
        bindparam("page_limit", type_=BigInteger())
    )


@functools.cache
def _listing_statements(
    column: str | None, nullable: bool, ordered: bool
) -> tuple[_AnySelect, Select[int]]:
    """A page and a count of a kind's resources, or of those whose indexed ``column`` is a key.

    ``ordered``: in creation order, as :func:`sort_order` gives without ``sortBy``.
    """
    where = listing_where(column, nullable)
    page = select(*_RESOURCE_COLUMNS).where(*where)
    if ordered:
        page = page.order_by(*creation_order())
    return _paged(page), select(func.count()).select_from(_RESOURCES).where(*where)


@functools.cache
def _memberships(kind: ResourceKind, dialect: str, *, single: bool) -> _AnySelect:
    """Users' groups or Groups' members, each with the resource it belongs to, by name.

    Of the one resource bound to ``owner`` when ``single``, else of those
    bound to ``owners`` (:func:`connector.db.dialect.bound_ids`). A group
    member's ``display`` is its stored label, else the user's displayName,
    else its userName.
    """
    own, other = _membership_sides(kind)
    related = _RESOURCES.c
    owned: ColumnElement[bool] = (
        own == bindparam("owner") if single else sql.in_bound_ids(dialect, own, "owners")
    )
    shown: ColumnElement[Any] = related.name
    if kind is ResourceKind.GROUP:
        shown = func.coalesce(
            _MEMBERS.c.display, related.document["displayName"].as_string(), related.name
        )
    return (
        select(own, related.id, shown)
        .join(_RESOURCES, related.id == other)
        .where(owned)
        .order_by(related.name_key, related.id)
    )


@dataclass(frozen=True)
class Written:
    """What one create, replace or member update did.

    ``before`` and ``after`` are the documents with ``meta`` and without
    ``members``/``groups`` (``before`` is None for a create, and ``after``
    is ``before`` with a new version for a members-only update); ``added``
    and ``removed`` are the users who joined and left the group, net.
    ``stored`` is what the protocol layer answers with.
    """

    stored: Stored
    before: Document | None
    after: Document
    added: frozenset[str] = field(default_factory=frozenset)
    removed: frozenset[str] = field(default_factory=frozenset)

    @property
    def attributes_changed(self) -> bool:
        """Whether a top-level attribute other than ``meta`` differs from before."""
        if self.before is None:
            return True
        return _without_meta(self.before) != _without_meta(self.after)


@dataclass(frozen=True)
class Deleted:
    """A deleted resource as it was, and a user's groups or a group's members then."""

    before: Document
    related: frozenset[str]


def _without_meta(document: Document) -> Document:
    return {key: value for key, value in document.items() if key != "meta"}


def _membership_sides(kind: ResourceKind) -> tuple[ColumnElement[str], ColumnElement[str]]:
    """The ``group_members`` column naming a resource of ``kind``, and the one naming the other."""
    member = _MEMBERS.c
    if kind is ResourceKind.USER:
        return member.user_id, member.group_id
    return member.group_id, member.user_id


# The write statements are built once: building one per request (its
# expressions, then its cache key) costs about as much CPU as running it.
_REPLACE = (
    update(_RESOURCES)
    .where(
        _RESOURCES.c.id == bindparam("replace_id"),
        _RESOURCES.c.version == bindparam("replace_version"),
    )
    .values(
        name=bindparam("replace_name"),
        name_key=bindparam("replace_name_key"),
        external_id=bindparam("replace_external_id"),
        active=bindparam("replace_active"),
        document=bindparam("replace_document", type_=_RESOURCES.c.document.type),
        version=bindparam("replace_new_version"),
        modified_at=bindparam("replace_now", type_=_RESOURCES.c.modified_at.type),
    )
)
_DELETE_VALUES = delete(_VALUES).where(_VALUES.c.resource_id == bindparam("values_resource_id"))

_NEW_ROW_COLUMNS = (
    "id",
    "org_id",
    "kind",
    "name",
    "name_key",
    "external_id",
    "active",
    "document",
    "version",
    "created_at",
    "modified_at",
)


def _values_of(written: Any) -> Any:
    """PostgreSQL: a document's attribute-value rows, inserted if ``written`` (a CTE) has a row.

    The rows travel as one array per column, read back by ``unnest``: an
    executemany costs the driver a message per row, which made it the
    dearest step of a create.
    """
    return _VALUES.insert().from_select(
        list(_VALUE_COLUMNS),
        select(literal_column("new_values.*"))
        .select_from(
            func.unnest(
                *(
                    bindparam(f"indexed_{name}", type_=_VALUE_ARRAY_TYPES[name])
                    for name in _VALUE_COLUMNS
                )
            ).alias("new_values")
        )
        .where(exists(select(written.c.id))),
    )


def _create_indexed() -> Any:
    """PostgreSQL: a create's row and its attribute-value rows, in one statement.

    The row is ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``
    (:meth:`DirectoryStore._insert_unique`); the value rows are inserted only
    when it inserted one, so a name already taken (no row back: 409) writes
    nothing at all.
    """
    created = (
        postgresql_insert(_RESOURCES)
        .values(
            {
                column: bindparam(f"new_{column}", type_=_RESOURCES.c[column].type)
                for column in _NEW_ROW_COLUMNS
            }
        )
        .on_conflict_do_nothing(index_elements=["org_id", "kind", "name_key"])
        .returning(_RESOURCES.c.id)
        .cte("created")
    )
    return select(created.c.id).add_cte(_values_of(created).cte("indexed"))


_MEMBER_OF = _RESOURCES.alias("member_of")


@functools.cache
def _replace_at_once(kind: ResourceKind, reindexed: bool) -> Any:
    """PostgreSQL: :data:`_REPLACE` and what follows it, in one statement.

    Answers the id when the UPDATE matched the row at the version read (no
    row: a stale write, which changed nothing). ``reindexed``: the
    attribute-value rows are rewritten with it. A user's row comes back once
    per group it belongs to (once with NULLs when none), the groups as
    :meth:`DirectoryStore._attach_memberships` orders them: users' ``groups``
    are read-only (RFC 7643 section 4.1.2), so the answer needs them read.
    """
    updated = _REPLACE.returning(_RESOURCES.c.id).cte("updated")
    statement = select(updated.c.id)
    if kind is ResourceKind.USER:
        memberships = _MEMBERS.join(_MEMBER_OF, _MEMBER_OF.c.id == _MEMBERS.c.group_id)
        statement = (
            select(
                updated.c.id,
                _MEMBER_OF.c.id.label("group_id"),
                _MEMBER_OF.c.name.label("group_name"),
            )
            .select_from(updated.outerjoin(memberships, _MEMBERS.c.user_id == updated.c.id))
            .order_by(_MEMBER_OF.c.name_key, _MEMBER_OF.c.id)
        )
    if reindexed:
        cleared = delete(_VALUES).where(_VALUES.c.resource_id.in_(select(updated.c.id)))
        statement = statement.add_cte(cleared.cte("cleared")).add_cte(
            _values_of(updated).cte("indexed")
        )
    return statement


_CREATE_INDEXED = _create_indexed()


# SQLite: the same insert alone; the document's index rows follow in one executemany.
_INSERT_UNIQUE = (
    sqlite_insert(_RESOURCES)
    .on_conflict_do_nothing(index_elements=["org_id", "kind", "name_key"])
    .returning(_RESOURCES.c.id)
)


@functools.cache
def _delete_at_once(kind: ResourceKind) -> Any:
    """PostgreSQL: delete a locked row at its version and exactly its memberships, in one go."""
    own, other = _membership_sides(kind)
    gone = (
        delete(_RESOURCES)
        .where(
            _RESOURCES.c.id == bindparam("delete_id"),
            _RESOURCES.c.version == bindparam("delete_version"),
        )
        .returning(_RESOURCES.c.id)
        .cte("gone")
    )
    memberships = (
        delete(_MEMBERS)
        .where(own.in_(select(gone.c.id)))
        .returning(other.label("related"))
        .cte("memberships")
    )
    related_ids = select(func.array_agg(memberships.c.related)).scalar_subquery()
    return select(gone.c.id, related_ids.label("related"))


def _value_arrays(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Attribute-value rows as :func:`_values_of` binds them: one array per column.

    Named apart from every ``scim_resources`` column: a parameter named after
    a column of an UPDATE's or INSERT's table would join its SET or VALUES.
    """
    return {f"indexed_{name}": [row[name] for row in rows] for name in _VALUE_COLUMNS}


def _updated(result: Any) -> Sequence[Any] | None:
    """What a replace's UPDATE answered, or None when it matched no row (a stale version).

    The plain UPDATE answers no row: its rowcount tells; the ``WITH`` forms
    of :func:`_replace_at_once` answer at least one row when they matched.
    """
    if result.returns_rows:
        rows: Sequence[Any] = result.all()
        return rows or None
    return () if getattr(result, "rowcount", 1) == 1 else None


def _version(expected: str | None) -> int | None:
    """The version number an ``If-Match``-style value names, if it names exactly one."""
    match = _ETAG.fullmatch(expected) if expected is not None else None
    return int(match.group(1)) if match is not None else None


def etag(version: int) -> str:
    """``meta.version`` as a weak entity tag (RFC 7644 section 3.14)."""
    return f'W/"{version}"'


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class DirectoryStore:
    """The SCIM resources of organization ``org_id``, within the transaction of ``session``.

    Every method may flush but never commits: the caller owns the transaction.
    """

    def __init__(
        self,
        session: Session,
        org_id: int,
        *,
        models: dict[ResourceKind, type[Resource[Any]]] | None = None,
    ) -> None:
        self.session = session
        self.org_id = org_id
        self.models = {**DEFAULT_MODELS, **(models or {})}
        # Rows read by get(): a replace at the version read needs no second read.
        self._read: dict[str, ResourceRow] = {}

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # -- reads -------------------------------------------------------------

    def get(self, kind: ResourceKind, resource_id: str, *, include_members: bool = True) -> Stored:
        row = self._row(kind, resource_id)
        self._read[row.id] = row
        document = self._document(kind, row)
        if include_members:
            self._attach_memberships(kind, [document])
        return Stored(row.id, etag(row.version), document)

    def list(self, kind: ResourceKind, query: ListQuery) -> Page:
        """RFC 7644 section 3.4.2: filter, sort, page, all in SQL; total counts every match.

        A page of a whole kind and an equality on an indexed column (the
        lookup IdPs make before a create) run statements built once
        (:mod:`connector.directory.listings`).
        """
        offset = max(query.start_index, 1) - 1
        limit = max(query.count, 0)
        listing = prepared_listing(self.models[kind], kind, query)
        where: builtins.list[ColumnElement[bool]] = []
        page: _AnySelect
        count: Select[int] | None = None
        parameters: dict[str, Any] = {}
        if listing is not None:
            page, count = _listing_statements(listing.column, listing.nullable, listing.ordered)
            parameters = listing_parameters(listing, self.org_id, kind)
        else:
            where = self._scope(kind)
            if query.filter is not None:
                compiler = FilterCompiler(self.models[kind], kind, self.org_id, self.dialect)
                where.append(compiler.visit(query.filter))
            page = select(*_RESOURCE_COLUMNS).where(*where)
            if not selects_at_most_one(kind, query.filter):
                page = page.order_by(*sort_order(self.models[kind], kind, query.sort))
            page = _paged(page)
        rows: Sequence[ResourceRow] = []
        if limit:
            bounds = {"page_offset": offset, "page_limit": limit}
            rows = self.session.execute(page, {**parameters, **bounds}).all()
        if limit and len(rows) < limit and (rows or offset == 0):
            total = offset + len(rows)
        else:
            if count is None:
                count = select(func.count()).select_from(_RESOURCES).where(*where)
            total = self.session.scalar(count, parameters) or 0
        documents = [self._document(kind, row) for row in rows]
        if query.include_members:
            self._attach_memberships(kind, documents)
        return Page(total=total, resources=documents)

    def member_ids(self, group_id: str) -> builtins.list[str]:
        """The ids of a group's members, as stored."""
        member = _MEMBERS.c
        return list(self.session.scalars(select(member.user_id).where(member.group_id == group_id)))

    # -- writes ------------------------------------------------------------

    def create(
        self,
        kind: ResourceKind,
        document: Document,
        members: MemberChanges | None = None,
        *,
        members_checked: bool = False,
    ) -> Written:
        """RFC 7644 section 3.3; the name is unique per organization, case-insensitively.

        ``members_checked``: the caller has already made sure (and locked) the
        members to add are users of this organization.
        """
        columns, kept = self._checked(kind, document)
        resource_id = str(uuid.uuid4())
        rows = value_rows(self.models[kind], kind, kept, resource_id, self.org_id)
        adds_members = members is not None and kind is ResourceKind.GROUP
        if adds_members and members is not None and not members_checked:
            check_member_ids(self.session, self.org_id, members)
        now = utcnow()
        new_row = {
            "id": resource_id,
            "org_id": self.org_id,
            "kind": kind.value,
            "name": columns.name,
            "name_key": columns.name_key,
            "external_id": columns.external_id,
            "active": columns.active,
            "document": kept,
            "version": 1,
            "created_at": now,
            "modified_at": now,
        }
        self._insert_unique(kind, columns, new_row, rows)
        after = self._assemble(kind, resource_id, kept, 1, now, now)
        result = dict(after)
        added: frozenset[str] = frozenset()
        if adds_members and members is not None and not members.is_empty():
            added, _ = self.apply_members(resource_id, members)
            self._attach_memberships(kind, [result])
        return Written(Stored(resource_id, etag(1), result), None, after, added)

    def replace(
        self,
        kind: ResourceKind,
        resource_id: str,
        document: Document,
        members: MemberChanges | None = None,
        *,
        expected_version: str | None = None,
        members_checked: bool = False,
    ) -> Written:
        """RFC 7644 sections 3.5.1 and 3.5.2: attributes and a member delta, atomically.

        The attribute-value index is rewritten only when an indexed value
        changed: a PATCH of ``active`` (a column) leaves it alone. A replace
        that changes nothing writes nothing and keeps the version. A replace at
        the version :meth:`get` just read (a PATCH's read-modify-write) does
        not read the row again.
        """
        columns, kept = self._checked(kind, document)
        row = self._read.pop(resource_id, None)
        locked = False
        if row is None or row.kind != kind.value or _version(expected_version) != row.version:
            row = self._row(kind, resource_id, for_update=True)
            self._check_version(row.version, expected_version)
            locked = True
        # Else the row was read at the version expected: the UPDATE below,
        # conditioned on that version, locks it or refuses a stale write.
        no_members = members is None or kind is ResourceKind.USER or members.is_empty()
        if locked and no_members and kept == row.document:
            # Nothing changes (Okta PUTs whole unchanged profiles): no new
            # version, no write. Only a locked, fresh read may say so.
            current = self._document(kind, row)
            answer = dict(current)
            if kind is ResourceKind.USER:
                self._attach_memberships(kind, [answer])
            return Written(Stored(resource_id, etag(row.version), answer), current, current)
        model = self.models[kind]
        rows = value_rows(model, kind, kept, resource_id, self.org_id)
        if members is not None and kind is ResourceKind.GROUP and not members_checked:
            check_member_ids(self.session, self.org_id, members)
        now = utcnow()
        version = row.version + 1
        parameters = {
            "replace_id": resource_id,
            "replace_version": row.version,
            "replace_name": columns.name,
            "replace_name_key": columns.name_key,
            "replace_external_id": columns.external_id,
            "replace_active": columns.active,
            "replace_document": kept,
            "replace_new_version": version,
            "replace_now": now,
        }
        reindexed = rows != value_rows(model, kind, row.document, resource_id, self.org_id)
        at_once = self.dialect == "postgresql"
        statement = _REPLACE
        if at_once:
            statement = _replace_at_once(kind, reindexed)
            if reindexed:
                parameters.update(_value_arrays(rows))
        if columns.name_key == row.name_key:
            updated = _updated(self.session.execute(statement, parameters))
        else:
            updated = self._renamed(kind, columns, statement, parameters)
        if updated is None:
            raise PreconditionFailedException(detail="the resource changed during this request")
        if reindexed and not at_once:
            self.session.execute(_DELETE_VALUES, {"values_resource_id": resource_id})
            self._insert_values(rows)
        before = self._document(kind, row)
        after = self._assemble(kind, resource_id, kept, version, row.created_at, now)
        added: frozenset[str] = frozenset()
        removed: frozenset[str] = frozenset()
        if members is not None and kind is ResourceKind.GROUP and not members.is_empty():
            added, removed = self.apply_members(resource_id, members)
        result_document = dict(after)
        if kind is ResourceKind.USER and at_once:
            groups = [
                {"value": found.group_id, "display": found.group_name, "type": "direct"}
                for found in updated
                if found.group_id is not None
            ]
            if groups:
                result_document[MEMBERSHIP_ATTRIBUTE[kind]] = groups
        elif kind is ResourceKind.USER:
            self._attach_memberships(kind, [result_document])
        return Written(
            Stored(resource_id, etag(version), result_document), before, after, added, removed
        )

    def update_members(
        self,
        group_id: str,
        members: MemberChanges,
        *,
        expected_version: str | None = None,
        members_checked: bool = False,
    ) -> Written:
        """A member delta on a group whose attributes do not change (RFC 7644 section 3.5.2).

        One UPDATE bumps the group's version and locks its row; the document is
        neither validated nor rewritten, and no attribute-value row is touched.
        """
        stored = self.bump_group(group_id, expected_version=expected_version)
        if not members_checked:
            check_member_ids(self.session, self.org_id, members)
        added, removed = self.apply_members(group_id, members)
        return Written(stored, stored.document, stored.document, added, removed)

    def apply_members(
        self, group_id: str, changes: MemberChanges
    ) -> tuple[frozenset[str], frozenset[str]]:
        """Apply a checked member delta to a locked group: the users who joined and left, net."""
        added, removed = apply_member_changes(self.session, self.org_id, group_id, changes)
        return frozenset(added), frozenset(removed)

    def bump_group(self, group_id: str, *, expected_version: str | None = None) -> Stored:
        """Lock a group's row and give it a new version, as a member change does.

        Answers the group, without its members. Raises ``NotFoundException``
        or, when ``expected_version`` is stale, ``PreconditionFailedException``
        having written nothing: the version is a condition of the UPDATE, and
        only a refused one reads the row again, to tell which error it is.
        """
        if not isinstance(group_id, str) or len(group_id) > 36 or not storable(group_id):
            raise NotFoundException(detail=f"Group {group_id!r} not found")
        parameters: dict[str, Any] = {
            "group_id": group_id,
            "group_org_id": self.org_id,
            "now": utcnow(),
        }
        statement = _BUMP_GROUP
        if expected_version is not None and expected_version.strip() != "*":
            match = _ETAG.fullmatch(expected_version)
            expected = int(match.group(1)) if match else -1
            # A number no INTEGER column holds matches no row (and never reaches the driver).
            parameters["expected"] = expected if expected <= _MAX_VERSION else -1
            statement = _BUMP_GROUP_AT_VERSION
        row = self.session.execute(statement, parameters).one_or_none()
        if row is None:
            current = self._row(ResourceKind.GROUP, group_id)
            self._check_version(current.version, expected_version)
            raise PreconditionFailedException(detail="the group changed during this request")
        return Stored(group_id, etag(row.version), self._document(ResourceKind.GROUP, row))

    def lock(
        self, kind: ResourceKind, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        """Lock a resource's row for this transaction, checking ``expected_version`` first."""
        row = self._row(kind, resource_id, for_update=True)
        self._check_version(row.version, expected_version)

    def delete(
        self, kind: ResourceKind, resource_id: str, *, expected_version: str | None = None
    ) -> Deleted:
        """RFC 7644 section 3.6; a user's memberships go with it (docs/rules.md#leavers)."""
        if self.dialect == "postgresql":
            return self._delete_at_once(kind, resource_id, expected_version)
        row = self._row(kind, resource_id, for_delete=True)
        self._check_version(row.version, expected_version)
        before = self._document(kind, row)
        own, other = _membership_sides(kind)
        related = frozenset(
            self.session.scalars(delete(_MEMBERS).where(own == resource_id).returning(other))
        )
        # Its attribute-value rows go with it (ON DELETE CASCADE).
        self.session.execute(
            delete(_RESOURCES).where(
                _RESOURCES.c.id == resource_id, _RESOURCES.c.version == row.version
            )
        )
        return Deleted(before, related)

    def _delete_at_once(
        self, kind: ResourceKind, resource_id: str, expected_version: str | None
    ) -> Deleted:
        """The delete in two PostgreSQL statements: lock the row, then delete it and its members.

        The row is locked first so that the deleting statement, whose snapshot
        is taken when it starts, sees every membership committed before: a
        membership insert of another writer, whose foreign-key check must wait
        for this lock, cannot slip past it and be removed unreported by the
        cascade. Data-modifying ``WITH`` clauses then delete the row and
        exactly its memberships and return both.
        """
        row = self._row(kind, resource_id, for_delete=True)
        self._check_version(row.version, expected_version)
        deleted = self.session.execute(
            _delete_at_once(kind), {"delete_id": row.id, "delete_version": row.version}
        ).one()
        return Deleted(self._document(kind, row), frozenset(deleted.related or ()))

    # -- transactions --------------------------------------------------------

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.session.begin_nested():
            yield

    # -- helpers -------------------------------------------------------------

    def _scope(self, kind: ResourceKind) -> builtins.list[ColumnElement[bool]]:
        return [_RESOURCES.c.org_id == self.org_id, _RESOURCES.c.kind == kind.value]

    def _row(
        self,
        kind: ResourceKind,
        resource_id: str,
        *,
        for_update: bool = False,
        for_delete: bool = False,
    ) -> ResourceRow:
        if not isinstance(resource_id, str) or len(resource_id) > 36 or not storable(resource_id):
            raise NotFoundException(detail=f"{kind.value} {resource_id!r} not found")
        query = (
            _ROW_BY_ID_FOR_DELETE
            if for_delete
            else _ROW_BY_ID_FOR_UPDATE
            if for_update
            else _ROW_BY_ID
        )
        row = self.session.execute(query, {"resource_id": resource_id}).one_or_none()
        if row is None or row.org_id != self.org_id or row.kind != kind.value:
            raise NotFoundException(detail=f"{kind.value} {resource_id!r} not found")
        return row

    def _checked(self, kind: ResourceKind, document: Document) -> tuple[ResourceColumns, Document]:
        """Everything a write needs from ``document``, checked before the database is touched."""
        if not isinstance(document, dict):
            raise InvalidValueException(detail="the resource must be a JSON object")
        check_storable(document)
        name_info = resolve_attribute(self.models[kind], NAME_ATTRIBUTE[kind])
        assert name_info is not None
        columns = resource_columns(kind, document, name_info.comparison_key)
        return columns, stored_document(kind, document)

    def _insert_unique(
        self,
        kind: ResourceKind,
        columns: ResourceColumns,
        values: dict[str, Any],
        rows: builtins.list[dict[str, Any]],
    ) -> None:
        """INSERT ... ON CONFLICT DO NOTHING on the unique name, then its index ``rows``.

        No row back is a 409 (RFC 7644 section 3.3), and no index row is
        written. The unique constraint settles racing creates too: on
        PostgreSQL the second insert waits for the first transaction and, once
        it commits, inserts nothing. The transaction stays usable, with no
        SAVEPOINT round trip on the hot path. PostgreSQL takes the row and its
        index rows in one statement (:func:`_create_indexed`).
        """
        if self.dialect == "postgresql":
            parameters = {f"new_{column}": value for column, value in values.items()}
            parameters.update(_value_arrays(rows))
            inserted = self.session.execute(_CREATE_INDEXED, parameters).first()
        else:
            inserted = self.session.execute(_INSERT_UNIQUE, values).first()
            if inserted is not None:
                self._insert_values(rows)
        if inserted is None:
            raise self._taken(kind, columns)

    def _renamed(
        self,
        kind: ResourceKind,
        columns: ResourceColumns,
        statement: Any,
        parameters: dict[str, Any],
    ) -> Sequence[Any] | None:
        """An UPDATE that changes the unique name, in a SAVEPOINT: a clash is a 409.

        The SAVEPOINT keeps the transaction usable after the database refuses
        the row (RFC 7644 section 3.5.1), also when the clash comes from a
        concurrent transaction.
        """
        try:
            with self.session.begin_nested():
                return _updated(self.session.execute(statement, parameters))
        except IntegrityError as error:
            text = str(error.orig)
            if _UNIQUE_CONSTRAINT in text or "name_key" in text:
                raise self._taken(kind, columns) from None
            raise

    def _taken(self, kind: ResourceKind, columns: ResourceColumns) -> UniquenessException:
        return UniquenessException(
            detail=f"{NAME_ATTRIBUTE[kind]} {columns.name!r} is already taken"
        )

    def _insert_values(self, rows: builtins.list[dict[str, Any]]) -> None:
        """SQLite: the attribute-index rows of one document, in one executemany.

        SQLite runs in process, so an executemany costs nothing extra; on
        PostgreSQL the rows travel as one array per column inside the write's
        own statement (:func:`_create_indexed`, :func:`_replace_at_once`).
        """
        if rows:
            self.session.execute(_VALUES.insert(), rows)

    def _check_version(self, current: int, expected: str | None) -> None:
        """``If-Match`` (RFC 7644 section 3.14): a stale version writes nothing."""
        if expected is None or expected.strip() == "*":
            return
        match = _ETAG.fullmatch(expected)
        if match is None or int(match.group(1)) != current:
            raise PreconditionFailedException(
                detail=f"version {expected} is not the current version {etag(current)}"
            )

    def _document(self, kind: ResourceKind, row: ResourceRow) -> Document:
        return self._assemble(
            kind, row.id, row.document, row.version, row.created_at, row.modified_at
        )

    def _assemble(
        self,
        kind: ResourceKind,
        resource_id: str,
        kept: Document,
        version: int,
        created: datetime,
        modified: datetime,
    ) -> Document:
        document = dict(kept)
        document["id"] = resource_id
        document["meta"] = {
            "resourceType": kind.value,
            "created": _iso(created),
            "lastModified": _iso(modified),
            "version": etag(version),
        }
        return document

    def _attach_memberships(self, kind: ResourceKind, documents: builtins.list[Document]) -> None:
        """Users' ``groups`` or Groups' ``members`` for a whole page, in one query."""
        if not documents:
            return
        by_id = {document["id"]: document for document in documents}
        if len(by_id) == 1:
            query = _memberships(kind, self.dialect, single=True)
            parameters: dict[str, Any] = {"owner": next(iter(by_id))}
        else:
            query = _memberships(kind, self.dialect, single=False)
            parameters = {"owners": sql.bound_ids(self.dialect, list(by_id))}
        rows = self.session.execute(query, parameters)
        if kind is ResourceKind.USER:
            entries = (
                (owner, {"value": group_id, "display": name, "type": "direct"})
                for owner, group_id, name in rows
            )
        else:
            entries = (
                (owner, {"value": user_id, "display": shown, "type": "User"})
                for owner, user_id, shown in rows
            )
        key = MEMBERSHIP_ATTRIBUTE[kind]
        for owner, entry in entries:
            by_id[owner].setdefault(key, []).append(entry)


class SqlBackend:
    """:class:`DirectoryStore` as the protocol layer's :class:`scim.backend.Backend`.

    For a directory that nothing follows (the store's own tests, and the
    contract suite); Hub's SCIM routes use :mod:`connector.provisioning`.
    """

    def __init__(
        self,
        session: Session,
        org_id: int,
        *,
        models: dict[ResourceKind, type[Resource[Any]]] | None = None,
    ) -> None:
        self.store = DirectoryStore(session, org_id, models=models)
        self.session = session
        self.org_id = org_id

    def get(self, kind: ResourceKind, resource_id: str, *, include_members: bool = True) -> Stored:
        return self.store.get(kind, resource_id, include_members=include_members)

    def list(self, kind: ResourceKind, query: ListQuery) -> Page:
        return self.store.list(kind, query)

    def create(
        self, kind: ResourceKind, document: Document, members: MemberChanges | None = None
    ) -> Stored:
        return self.store.create(kind, document, members).stored

    def replace(
        self,
        kind: ResourceKind,
        resource_id: str,
        document: Document,
        members: MemberChanges | None = None,
        *,
        expected_version: str | None = None,
    ) -> Stored:
        written = self.store.replace(
            kind, resource_id, document, members, expected_version=expected_version
        )
        return written.stored

    def update_members(
        self, group_id: str, members: MemberChanges, *, expected_version: str | None = None
    ) -> Stored:
        return self.store.update_members(
            group_id, members, expected_version=expected_version
        ).stored

    def delete(
        self, kind: ResourceKind, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        self.store.delete(kind, resource_id, expected_version=expected_version)

    def savepoint(self) -> AbstractContextManager[None]:
        return self.store.savepoint()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
