"""The SCIM operations on one backend: create, replace, patch, delete, get and list.

A write comes in two halves. ``prepare_*`` takes the request already parsed
as JSON and validates it with scim2-models into a :class:`Creation`,
:class:`Replacement` or :class:`Patch`, touching no backend: the caller does it
before any transaction or lock. ``apply_*`` then makes exactly the backend
calls RFC 7644 section 3 needs, inside the request's transaction. None
commits: the caller commits once when the whole request succeeded. They know
nothing of Flask, so Bulk runs the very same code.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    InvalidPathException,
    InvalidSyntaxException,
    MutabilityException,
    PatchOp,
    Path,
    PayloadTooLargeException,
    PreconditionFailedException,
    Resource,
    ScimPolicy,
)
from werkzeug.datastructures import ETags

from scim.backend import Backend, Document, ListQuery, MemberChanges, Page, ResourceKind, Stored
from scim.dialects import body_resource_id, normalize_patch, normalize_resource, require_object
from scim.errors import exception_from_validation_error
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas
from scim.http import etag_matches
from scim.limits import check_multi_valued, check_patch_size, check_patch_work
from scim.membership import creation_changes, replacement_changes, split_member_operations
from scim.representation import (
    from_stored,
    parse_resource,
    stored_from_document,
    to_backend_document,
)
from scim.settings import ScimSettings

PATCH_POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)
"""How PATCH requests are read (RFC 7644 section 3.5.2, as Entra ID speaks it).

A ``remove`` may list the entries to remove in its ``value``, and an ``add``
or ``replace`` on a filtered path that matches nothing, such as
``emails[type eq "work"].value``, creates the entry the filter describes.
An attribute no schema declares is dropped from a value, as in resource
bodies; but a ``path`` naming one is refused (:func:`check_paths`).
"""

MAX_MULTI_VALUED = ScimSettings.max_multi_valued

_PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass(frozen=True)
class PatchResult:
    """The resource after a PATCH, and whether anything was written."""

    stored: Stored
    modified: bool


# -- validated requests: built before any transaction -------------------------------------


@dataclass(frozen=True)
class Creation:
    """A validated POST (RFC 7644 section 3.3): the document, and a group's members apart."""

    kind: ResourceKind
    document: Document
    members: MemberChanges | None = None


@dataclass(frozen=True)
class Replacement:
    """A validated PUT (RFC 7644 section 3.5.1); ``members`` is a group's new member set."""

    kind: ResourceKind
    resource_id: str
    document: Document
    members: MemberChanges | None
    if_match: ETags | None = None


@dataclass(frozen=True)
class Patch:
    """A validated PATCH (RFC 7644 section 3.5.2).

    ``operations`` are what scim2-models applies to the stored document (None
    when every operation was on a group's members); ``members`` is the member
    delta, applied without reading or rewriting the group document.
    """

    kind: ResourceKind
    resource_id: str
    operations: PatchOp[Any] | None
    members: MemberChanges
    if_match: ETags | None = None
    served: ServedSchemas = DEFAULT_SCHEMAS


def prepare_creation(
    kind: ResourceKind,
    payload: Any,
    max_multi_valued: int = MAX_MULTI_VALUED,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Creation:
    """Parse and validate a POST body, without touching the backend."""
    body = normalize_resource(kind, require_object(payload, "resource"), served.known_schemas(kind))
    resource = parse_resource(kind, body, Context.RESOURCE_CREATION_REQUEST, served)
    document = to_backend_document(resource)
    check_multi_valued(document, max_multi_valued)
    if kind is ResourceKind.GROUP:
        return Creation(kind, document, creation_changes(document.pop("members", None)))
    return Creation(kind, document)


def prepare_replacement(
    kind: ResourceKind,
    resource_id: str,
    payload: Any,
    if_match: ETags | None = None,
    max_multi_valued: int = MAX_MULTI_VALUED,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Replacement:
    """Parse and validate a PUT body, without touching the backend.

    ``id``, if the body carries one, must be the one of the URL. A group's
    member list becomes the new member set, which the backend applies as a
    difference against what it stores.
    """
    body = require_object(payload, "resource")
    body_id = body_resource_id(body)
    if body_id is not None and body_id != resource_id:
        raise MutabilityException(
            attribute="id", detail="The id in the body is not the id of the resource"
        )
    resource = parse_resource(
        kind,
        normalize_resource(kind, body, served.known_schemas(kind)),
        Context.RESOURCE_REPLACEMENT_REQUEST,
        served,
    )
    document = to_backend_document(resource)
    check_multi_valued(document, max_multi_valued)
    members = None
    if kind is ResourceKind.GROUP:
        members = replacement_changes(document.pop("members", None))
    return Replacement(kind, resource_id, document, members, if_match)


def prepare_patch(
    kind: ResourceKind,
    resource_id: str,
    payload: Any,
    settings: ScimSettings,
    if_match: ETags | None = None,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Patch:
    """Parse and validate a PatchOp body, without touching the backend."""
    body = normalize_patch(kind, require_object(payload, "PATCH request"))
    operations, members = parse_patch(kind, body, settings, served)
    return Patch(kind, resource_id, operations, members, if_match, served)


# -- applying them to a backend, inside the request's transaction -------------------------


def apply_creation(backend: Backend, creation: Creation) -> Stored:
    """POST a resource (RFC 7644 section 3.3); a group's members travel as a delta."""
    return backend.create(creation.kind, creation.document, members=creation.members)


def apply_replacement(backend: Backend, replacement: Replacement) -> Stored:
    """PUT a resource (RFC 7644 section 3.5.1)."""
    expected = expected_version(
        backend, replacement.kind, replacement.resource_id, replacement.if_match
    )
    return backend.replace(
        replacement.kind,
        replacement.resource_id,
        replacement.document,
        replacement.members,
        expected_version=expected,
    )


def apply_patch(
    backend: Backend, patch: Patch, settings: ScimSettings, include_members: bool = True
) -> PatchResult:
    """PATCH a resource (RFC 7644 section 3.5.2): all operations apply, or none.

    A PATCH that only changes a group's members is one call to
    :meth:`Backend.update_members`: the group document is neither read nor
    rewritten, and the work is O(k) in the members named.

    Otherwise the stored resource is read, patched by scim2-models and written
    back with the version it was read at. When another writer got there first
    the backend refuses it, and the read-modify-write starts again, up to
    ``settings.patch_retries`` times; a stale ``If-Match`` is refused at once.
    """
    kind, resource_id = patch.kind, patch.resource_id
    if patch.operations is None:
        expected = expected_version(backend, kind, resource_id, patch.if_match)
        if patch.members.is_empty():
            stored = backend.get(kind, resource_id, include_members=False)
            return PatchResult(stored=stored, modified=False)
        stored = backend.update_members(resource_id, patch.members, expected_version=expected)
        return PatchResult(stored=stored, modified=True)
    attempts = settings.patch_retries + 1
    for attempt in range(attempts):
        # Memberships are read-only and answered by the write itself, so the
        # read half never loads them (a group's members can be many).
        stored = backend.get(kind, resource_id, include_members=False)
        if patch.if_match is not None and not etag_matches(patch.if_match, stored.version):
            raise PreconditionFailedException()
        check_patch_work(patch.operations.operations, stored.document, settings)
        resource = from_stored(kind, stored.document, patch.served)
        modified = patch.operations.patch(resource, scim_policy=PATCH_POLICY)
        if not modified and patch.members.is_empty():
            if include_members and kind is ResourceKind.USER:
                stored = backend.get(kind, resource_id, include_members=True)
            return PatchResult(stored=stored, modified=False)
        document = to_backend_document(resource)
        check_multi_valued(document, settings.max_multi_valued)
        if kind is ResourceKind.GROUP:
            document.pop("members", None)
        try:
            written = backend.replace(
                kind,
                resource_id,
                document,
                None if patch.members.is_empty() else patch.members,
                expected_version=stored.version,
            )
        except PreconditionFailedException:
            if attempt + 1 >= attempts:
                raise
            continue
        return PatchResult(stored=written, modified=True)
    raise PreconditionFailedException()  # pragma: no cover - the loop returns or raises


# -- both at once, for callers that have no lock to keep validation out of (Bulk) ---------


def create_resource(
    backend: Backend,
    kind: ResourceKind,
    payload: Any,
    max_multi_valued: int = MAX_MULTI_VALUED,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Stored:
    """POST a resource (RFC 7644 section 3.3)."""
    return apply_creation(backend, prepare_creation(kind, payload, max_multi_valued, served))


def replace_resource(
    backend: Backend,
    kind: ResourceKind,
    resource_id: str,
    payload: Any,
    if_match: ETags | None = None,
    max_multi_valued: int = MAX_MULTI_VALUED,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Stored:
    """PUT a resource (RFC 7644 section 3.5.1)."""
    replacement = prepare_replacement(
        kind, resource_id, payload, if_match, max_multi_valued, served
    )
    return apply_replacement(backend, replacement)


def patch_resource(
    backend: Backend,
    kind: ResourceKind,
    resource_id: str,
    payload: Any,
    settings: ScimSettings,
    if_match: ETags | None = None,
    include_members: bool = True,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> PatchResult:
    """PATCH a resource (RFC 7644 section 3.5.2)."""
    patch = prepare_patch(kind, resource_id, payload, settings, if_match, served)
    return apply_patch(backend, patch, settings, include_members)


def parse_patch(
    kind: ResourceKind,
    body: dict[str, Any],
    settings: ScimSettings,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> tuple[PatchOp[Any] | None, MemberChanges]:
    """The operations scim2-models applies, and for a group the member delta apart."""
    operations = next((v for k, v in body.items() if k.lower() == "operations"), None)
    if isinstance(operations, list) and len(operations) > settings.max_patch_operations:
        raise PayloadTooLargeException(
            detail=f"A PATCH request carries at most {settings.max_patch_operations} operations"
        )
    members = MemberChanges()
    if kind is ResourceKind.GROUP and isinstance(operations, list) and operations:
        operations, members = split_member_operations(operations)
        if not operations:
            _check_patch_envelope(body)
            return None, members
        body = {key: value for key, value in body.items() if key.lower() != "operations"}
        body["Operations"] = operations
    if isinstance(operations, list):
        check_patch_size(operations, settings)
    model: type[Resource[Any]] = served.model(kind)
    text = _shareable_text(operations, body)
    if text is None:
        return _validated(model, body), members
    return _SHARED_PATCHES.validated(model, text, body), members


def _shareable_text(operations: Any, body: dict[str, Any]) -> str | None:
    """``body`` as JSON if its validated form may serve later identical requests, else None.

    Only a short body whose every value is a string, number, boolean or null:
    applying a PATCH puts its values into the resource, and an immutable
    value cannot be changed there, so a validated PatchOp stays as validated.
    """
    if not isinstance(operations, list):
        return None
    for operation in operations:
        if not isinstance(operation, dict):
            return None
        for key, value in operation.items():
            if key.lower() == "value" and not _immutable(value):
                return None
    text = json.dumps(body)
    return text if len(text) <= SHARED_PATCH_LENGTH else None


def _immutable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float)


SHARED_PATCH_LENGTH = 1024
"""The longest PatchOp body, as JSON, whose validation serves the next identical one."""


class _SharedPatches:
    """The PatchOps of the bodies validated lately, for each resource model.

    IdPs send the same few bodies over and over (Entra ID deactivates every
    leaver with one and the same ``replace`` of ``active``): scim2-models then
    validates each such body once per process. A refused body is kept by no
    one, so it is refused again, the same way, every time.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: OrderedDict[tuple[type[Resource[Any]], str], PatchOp[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def validated(
        self, model: type[Resource[Any]], text: str, body: dict[str, Any]
    ) -> PatchOp[Any]:
        key = (model, text)
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        patch = _validated(model, body)
        if all(_immutable(operation.value) for operation in patch.operations or ()):
            with self._lock:
                self._kept[key] = patch
                if len(self._kept) > self._size:
                    self._kept.popitem(last=False)
        return patch


_SHARED_PATCHES = _SharedPatches(256)


def _validated(model: type[Resource[Any]], body: dict[str, Any]) -> PatchOp[Any]:
    """The PatchOp scim2-models reads from ``body``, its paths checked first."""
    check_paths(model, next((v for k, v in body.items() if k.lower() == "operations"), None))
    try:
        return PatchOp[model].model_validate(  # type: ignore[valid-type]
            body, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=PATCH_POLICY
        )
    except ValidationError as exc:
        raise exception_from_validation_error(exc) from exc


def check_paths(model: type[Resource[Any]], operations: Any) -> None:
    """Refuse a PATCH ``path`` naming an attribute the schema does not declare: ``invalidPath``.

    A client that targets an attribute by its path means that attribute; doing
    nothing would acknowledge a change that was never made (RFC 7644 section 3.5.2).
    """
    for operation in operations if isinstance(operations, list) else ():
        if not isinstance(operation, dict):
            continue
        raw = next((v for k, v in operation.items() if k.lower() == "path"), None)
        if not isinstance(raw, str) or not raw:
            continue
        path = Path[model](raw)  # type: ignore[valid-type]
        if path.model is None and path.resolve() is None:
            raise InvalidPathException(
                path=raw, detail=f"'{raw}' is not an attribute of the schema"
            )


def _check_patch_envelope(body: dict[str, Any]) -> None:
    """Check ``schemas`` of a PatchOp whose operations all went to the member delta.

    As scim2-models does for the others: absent is tolerated, but if present
    it must name the PatchOp schema.
    """
    schemas = next((v for k, v in body.items() if k.lower() == "schemas"), None)
    if schemas is not None and (
        not isinstance(schemas, list)
        or _PATCH_SCHEMA.lower() not in {str(urn).lower() for urn in schemas}
    ):
        raise InvalidSyntaxException(
            detail=f"schemas must contain the base schema '{_PATCH_SCHEMA}'"
        )


def delete_resource(
    backend: Backend, kind: ResourceKind, resource_id: str, if_match: ETags | None = None
) -> None:
    """DELETE a resource (RFC 7644 section 3.6)."""
    expected = expected_version(backend, kind, resource_id, if_match)
    backend.delete(kind, resource_id, expected_version=expected)


def expected_version(
    backend: Backend, kind: ResourceKind, resource_id: str, if_match: ETags | None
) -> str | None:
    """The stored version an ``If-Match`` names, or 412 (RFC 7644 section 3.14).

    The current version is read so that the backend receives it in its own
    spelling; the backend then refuses the write if it changed meanwhile.
    """
    if if_match is None:
        return None
    stored = backend.get(kind, resource_id, include_members=False)
    if not etag_matches(if_match, stored.version):
        raise PreconditionFailedException()
    return stored.version


def list_resources(backend: Backend, kind: ResourceKind, query: ListQuery) -> Page:
    """Query one resource type (RFC 7644 section 3.4.2)."""
    if query.count == 0:
        page = backend.list(kind, query)
        return Page(total=page.total, resources=[])
    return backend.list(kind, query)


def search_all(
    backend: Backend, kinds: list[ResourceKind], queries: dict[ResourceKind, ListQuery]
) -> tuple[int, list[tuple[ResourceKind, Stored]]]:
    """Query several resource types as one result list, in order (RFC 7644 section 3.4.3).

    The types follow one another, each sorted as asked; ``startIndex`` and
    ``count`` apply to the concatenation.
    """
    first = queries[kinds[0]]
    skip = first.start_index - 1
    wanted = first.count
    total = 0
    resources: list[tuple[ResourceKind, Stored]] = []
    for kind in kinds:
        query = queries[kind]
        probe = backend.list(kind, _page_of(query, 1, 0))
        total += probe.total
        if wanted <= 0 or skip >= probe.total:
            skip = max(0, skip - probe.total)
            continue
        page = backend.list(kind, _page_of(query, skip + 1, wanted))
        resources += [(kind, stored_from_document(document)) for document in page.resources]
        wanted -= len(page.resources)
        skip = 0
    return total, resources


def _page_of(query: ListQuery, start_index: int, count: int) -> ListQuery:
    return ListQuery(
        filter=query.filter,
        sort=query.sort,
        start_index=start_index,
        count=count,
        include_members=query.include_members,
    )
