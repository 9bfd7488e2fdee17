"""An in-memory :class:`scim.backend.Backend` for the protocol layer's own tests.

It keeps the contract (versions, uniqueness, member deltas, savepoints,
commit and rollback) but none of its performance promises: it filters with
scim2-models' ``ScimFilter.match`` over every resource, which the real store
must never do. It also records the calls it receives, so tests can check that
a group PATCH never loads the member list.
"""

from __future__ import annotations

import copy
import json as _json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from scim2_models import (
    InvalidValueException,
    NotFoundException,
    PreconditionFailedException,
    ScimFilter,
    SearchRequest,
    UniquenessException,
)
from werkzeug.test import TestResponse

from scim.backend import Document, ListQuery, MemberChanges, Page, ResourceKind, Stored
from scim.blueprint import create_blueprint
from scim.errors import register_scim_error_handlers
from scim.published import Publication
from scim.resources import GROUP_SCHEMA, MODELS, NAME_ATTRIBUTE, USER_SCHEMA
from scim.settings import ScimSettings

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class Record:
    id: str
    version: int
    document: Document
    members: dict[str, str | None] = field(default_factory=dict)
    """Member id -> the display label the client sent, or None."""


@dataclass
class FakeStore:
    """The committed state shared by every backend of one test."""

    resources: dict[ResourceKind, dict[str, Record]] = field(
        default_factory=lambda: {kind: {} for kind in ResourceKind}
    )
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    commits: int = 0
    rollbacks: int = 0
    fail_next_replace: int = 0
    """Make the next n ``replace`` calls raise PreconditionFailed, as a concurrent writer would."""


class FakeBackend:
    """One request's view of a :class:`FakeStore`, committed or rolled back as a whole."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.working = copy.deepcopy(store.resources)

    # -- reads -----------------------------------------------------------------

    def get(self, kind: ResourceKind, resource_id: str, *, include_members: bool = True) -> Stored:
        self.store.calls.append(("get", kind, resource_id, include_members))
        return self._stored(kind, self._record(kind, resource_id), include_members)

    def list(self, kind: ResourceKind, query: ListQuery) -> Page:
        self.store.calls.append(("list", kind, query))
        model = MODELS[kind]
        records = list(self.working[kind].values())
        pairs = [
            (record, model.model_validate(self._document(kind, record, include_members=True)))
            for record in records
        ]
        if query.filter is not None:
            scim_filter = ScimFilter[model](query.filter)  # type: ignore[valid-type]
            pairs = [
                (record, resource) for record, resource in pairs if scim_filter.match(resource)
            ]
        if query.sort is not None:
            request = SearchRequest[model](  # type: ignore[valid-type]
                sort_by=query.sort.attribute,
                sort_order="descending" if query.sort.descending else "ascending",
            )
            order = {id(resource): record for record, resource in pairs}
            pairs = [
                (order[id(resource)], resource) for resource in request.sort([r for _, r in pairs])
            ]
        start = query.start_index - 1
        page = pairs[start : start + query.count]
        return Page(
            total=len(pairs),
            resources=[self._document(kind, record, query.include_members) for record, _ in page],
        )

    # -- writes ----------------------------------------------------------------

    def create(
        self, kind: ResourceKind, document: Document, members: MemberChanges | None = None
    ) -> Stored:
        self.store.calls.append(("create", kind, members))
        self._check_unique(kind, document, None)
        now = _now()
        record = Record(
            id=str(uuid.uuid4()),
            version=1,
            document={**copy.deepcopy(document), "meta": {"created": now, "lastModified": now}},
        )
        if members is not None:
            self._apply_members(record, members)
        self.working[kind][record.id] = record
        return self._stored(kind, record, include_members=True)

    def replace(
        self,
        kind: ResourceKind,
        resource_id: str,
        document: Document,
        members: MemberChanges | None = None,
        *,
        expected_version: str | None = None,
    ) -> Stored:
        self.store.calls.append(("replace", kind, resource_id, members, expected_version))
        record = self._record(kind, resource_id)
        if self.store.fail_next_replace:
            self.store.fail_next_replace -= 1
            record.version += 1
            raise PreconditionFailedException()
        if expected_version is not None and expected_version != _etag(record.version):
            raise PreconditionFailedException()
        self._check_unique(kind, document, resource_id)
        if "members" in document or "password" in document:
            raise AssertionError("members and password never reach the backend document")
        if members is not None:
            self._check_members(members)
        meta = record.document["meta"]
        record.document = {
            **copy.deepcopy(document),
            "meta": {"created": meta["created"], "lastModified": _now()},
        }
        if members is not None:
            self._apply_members(record, members)
        record.version += 1
        # As the SQL store: a group write is answered without its member list.
        return self._stored(kind, record, include_members=kind is ResourceKind.USER)

    def update_members(
        self, group_id: str, members: MemberChanges, *, expected_version: str | None = None
    ) -> Stored:
        self.store.calls.append(
            ("update_members", ResourceKind.GROUP, group_id, members, expected_version)
        )
        record = self._record(ResourceKind.GROUP, group_id)
        if expected_version is not None and expected_version != _etag(record.version):
            raise PreconditionFailedException()
        self._apply_members(record, members)
        record.document["meta"]["lastModified"] = _now()
        record.version += 1
        return self._stored(ResourceKind.GROUP, record, include_members=False)

    def delete(
        self, kind: ResourceKind, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        self.store.calls.append(("delete", kind, resource_id, expected_version))
        record = self._record(kind, resource_id)
        if expected_version is not None and expected_version != _etag(record.version):
            raise PreconditionFailedException()
        del self.working[kind][resource_id]
        if kind is ResourceKind.USER:
            for group in self.working[ResourceKind.GROUP].values():
                group.members.pop(resource_id, None)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        snapshot = copy.deepcopy(self.working)
        try:
            yield
        except BaseException:
            self.working = snapshot
            raise

    def commit(self) -> None:
        self.store.commits += 1
        self.store.resources = copy.deepcopy(self.working)

    def rollback(self) -> None:
        self.store.rollbacks += 1
        self.working = copy.deepcopy(self.store.resources)

    # -- helpers ---------------------------------------------------------------

    def _record(self, kind: ResourceKind, resource_id: str) -> Record:
        record = self.working[kind].get(resource_id)
        if record is None:
            raise NotFoundException(detail=f"{kind.value} {resource_id} not found")
        return record

    def _check_unique(self, kind: ResourceKind, document: Document, own_id: str | None) -> None:
        attribute = NAME_ATTRIBUTE[kind]
        value = str(document.get(attribute, "")).lower()
        for record in self.working[kind].values():
            if record.id != own_id and str(record.document.get(attribute, "")).lower() == value:
                raise UniquenessException(
                    detail=f"{attribute} {document.get(attribute)!r} is taken"
                )

    def _check_members(self, changes: MemberChanges) -> None:
        """Every id to add or keep names a user, else ``invalidValue`` naming every other one."""
        users = self.working[ResourceKind.USER]
        unknown = sorted(((changes.replace or frozenset()) | changes.add) - users.keys())
        if unknown:
            named = ", ".join(repr(member_id) for member_id in unknown)
            raise InvalidValueException(detail=f"members {named} are not users")

    def _apply_members(self, record: Record, changes: MemberChanges) -> None:
        self._check_members(changes)
        if changes.replace is not None:
            record.members = {
                member_id: changes.display.get(member_id) for member_id in changes.replace
            }
        if changes.remove_all:
            record.members = {}
        for member_id in changes.remove:
            record.members.pop(member_id, None)
        for member_id in changes.add:
            if member_id in changes.display or member_id not in record.members:
                record.members[member_id] = changes.display.get(member_id)

    def _document(self, kind: ResourceKind, record: Record, include_members: bool) -> Document:
        document = copy.deepcopy(record.document)
        document["id"] = record.id
        document["meta"] = {
            **document["meta"],
            "resourceType": kind.value,
            "version": _etag(record.version),
        }
        if include_members and kind is ResourceKind.GROUP and record.members:
            document["members"] = [
                {"value": member, "display": self._member_display(member, label), "type": "User"}
                for member, label in sorted(record.members.items())
            ]
        if include_members and kind is ResourceKind.USER:
            groups = [
                {"value": group.id, "display": group.document.get("displayName"), "type": "direct"}
                for group in self.working[ResourceKind.GROUP].values()
                if record.id in group.members
            ]
            if groups:
                document["groups"] = groups
        return document

    def _member_display(self, member_id: str, label: str | None) -> str | None:
        """The label sent, else the user's displayName, else userName, as the SQL store shows."""
        if label is not None:
            return label
        user = self.working[ResourceKind.USER].get(member_id)
        if user is None:
            return None
        shown = user.document.get("displayName")
        if not isinstance(shown, str):
            shown = user.document.get("userName")
        return shown if isinstance(shown, str) else None

    def _stored(self, kind: ResourceKind, record: Record, include_members: bool) -> Stored:
        return Stored(
            id=record.id,
            version=_etag(record.version),
            document=self._document(kind, record, include_members),
        )


class FakeBackendProvider:
    """A :class:`scim.backend.BackendProvider` giving a fresh backend over one store per request."""

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store or FakeStore()

    def __call__(self) -> FakeBackend:
        return FakeBackend(self.store)


def _etag(version: int) -> str:
    return f'W/"{version}"'


def _now() -> str:
    return datetime.now(UTC).isoformat()


def make_scim_app(
    settings: ScimSettings | None = None,
    store: FakeStore | None = None,
    publications: Sequence[Publication] = (),
) -> tuple[Flask, FakeBackendProvider]:
    """A bare Flask app serving the SCIM blueprint at ``/scim/v2`` over a fresh fake store."""
    provider = FakeBackendProvider(store)
    app = Flask("scim_protocol_tests")
    app.register_blueprint(
        create_blueprint(provider, settings or ScimSettings(), publications=publications),
        url_prefix="/scim/v2",
    )
    register_scim_error_handlers(app, "/scim/v2")
    return app, provider


class ScimClient:
    """Flask's test client with the ``/scim/v2`` prefix and SCIM media type, for scenario tests."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()

    def open(self, method: str, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        headers = dict(kwargs.pop("headers", None) or {})
        if json is not None:
            headers.setdefault("Content-Type", "application/scim+json")
            kwargs["data"] = _json.dumps(json)
        response: TestResponse = self.client.open(
            "/scim/v2" + path, method=method, headers=headers, **kwargs
        )
        return response

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.open("POST", path, json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.open("PUT", path, json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.open("PATCH", path, json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.open("DELETE", path, **kwargs)


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    """A PatchOp body (RFC 7644 section 3.5.2)."""
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def user(user_name: str, **attributes: Any) -> dict[str, Any]:
    """A User creation body."""
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def group(display_name: str, *member_ids: str, **attributes: Any) -> dict[str, Any]:
    """A Group creation body, with members given by id."""
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": display_name, **attributes}
    if member_ids:
        body["members"] = [{"value": member_id} for member_id in member_ids]
    return body
