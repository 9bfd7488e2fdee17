"""From request bodies to backend documents, and from stored documents to responses.

Requests are validated by scim2-models in the context of the operation
(RFC 7644 section 3.2 and scim2-models' :class:`~scim2_models.Context`);
documents sent to the backend are dumped in the request context, so read-only
attributes never reach storage, and without ``password``. Responses are
dumped in the response context with the client's ``attributes`` and
``excludedAttributes`` (RFC 7644 section 3.9), so that ``returned``
characteristics are honoured on every read.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, reduce
from operator import or_
from typing import Any

from pydantic import ValidationError
from scim2_models import Context, ListResponse, Resource, ResponseParameters, ScimPolicy

from scim.backend import Document, ResourceKind, Stored
from scim.errors import exception_from_validation_error
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas
from scim.http import weak_etag
from scim.resources import ENDPOINTS

REQUEST_POLICY = ScimPolicy(unknown=ScimPolicy.Unknown.ignore)
"""How resource bodies are read: an attribute no schema declares is dropped, not refused.

RFC 7644 does not require refusing it, and an IdP's otherwise valid request
must not become an error (docs/rules.md#directory-mirrors-the-idp): an attribute an admin mapped
in Okta or Entra without Hub knowing it is ignored, as RFC 7644 section
3.5.1 ignores read-only ones.
"""


def parse_resource(
    kind: ResourceKind,
    payload: dict[str, Any],
    context: Context,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Resource[Any]:
    """Validate a (normalized) resource body in a request context."""
    model = served.model(kind)
    try:
        return model.model_validate(payload, scim_ctx=context, scim_policy=REQUEST_POLICY)
    except ValidationError as exc:
        raise exception_from_validation_error(exc) from exc


def from_stored(
    kind: ResourceKind, document: Document, served: ServedSchemas = DEFAULT_SCHEMAS
) -> Resource[Any]:
    """A stored document as a model, to apply a PATCH to or to serialize."""
    return served.model(kind).model_validate(document)


def to_backend_document(resource: Resource[Any]) -> Document:
    """The attributes a client may write, as a JSON-ready document.

    Dumped in a request context, which leaves out read-only attributes
    (``id``, ``meta``, a User's ``groups``); ``password`` is dropped too, as
    Hub stores no password.
    """
    document = resource.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    document.pop("password", None)
    return document


def resource_location(base_url: str, kind: ResourceKind, resource_id: str) -> str:
    """The absolute URI of a resource (RFC 7643 section 3.1, ``meta.location``)."""
    return f"{base_url}{ENDPOINTS[kind]}/{resource_id}"


def stored_from_document(document: Document) -> Stored:
    """A listed document as a :class:`Stored`: its id, and its version from ``meta.version``."""
    meta = document.get("meta") or {}
    return Stored(
        id=str(document.get("id")), version=str(meta.get("version") or ""), document=document
    )


def stored_resource(
    kind: ResourceKind, stored: Stored, base_url: str, served: ServedSchemas = DEFAULT_SCHEMAS
) -> Resource[Any]:
    """A stored resource as a model, with ``meta`` completed by the protocol layer."""
    return from_stored(kind, response_document(kind, stored, base_url), served)


def response_document(kind: ResourceKind, stored: Stored, base_url: str) -> Document:
    """A stored document with what the protocol layer adds: ``id``, ``meta.location`` and
    ``meta.version`` (RFC 7643 section 3.1), and ``$ref`` on members and groups.
    """
    stored_document = stored.document
    meta = dict(stored_document.get("meta") or {})
    meta["resourceType"] = kind.value
    meta["location"] = resource_location(base_url, kind, stored.id)
    if stored.version:
        meta["version"] = weak_etag(stored.version)
    # The common attributes first, as RFC 7643's examples and scim2-models' dumps show them:
    # their keys are placed, then every stored attribute fills them or follows in its order.
    document: Document = dict.fromkeys(_LEADING_ATTRIBUTES[_leading(stored_document)])
    document.update(stored_document)
    document["id"] = stored.id
    document["meta"] = meta
    for attribute, target in (("members", ResourceKind.USER), ("groups", ResourceKind.GROUP)):
        if isinstance(document.get(attribute), list):
            document[attribute] = [
                _with_ref(entry, target, base_url) for entry in document[attribute]
            ]
    return document


_LEADING_ATTRIBUTES = (
    ("id", "meta"),
    ("schemas", "id", "meta"),
    ("id", "externalId", "meta"),
    ("schemas", "id", "externalId", "meta"),
)
"""The keys a response document starts with, by which of ``schemas`` and ``externalId`` it has."""


def _leading(stored_document: Document) -> int:
    return ("schemas" in stored_document) + 2 * ("externalId" in stored_document)


def _with_ref(entry: Any, kind: ResourceKind, base_url: str) -> Any:
    """A member or group entry with its ``$ref`` (RFC 7643 sections 4.1.2 and 4.2).

    Backends keep ids only; the URI depends on the base URL of the request.
    A group member is a User unless its ``type`` says Group.
    """
    if not isinstance(entry, dict) or entry.get("$ref") or not entry.get("value"):
        return entry
    if entry.get("type") == "Group":
        kind = ResourceKind.GROUP
    return {**entry, "$ref": resource_location(base_url, kind, str(entry["value"]))}


def selects_attributes(parameters: ResponseParameters[Any] | None) -> bool:
    """Whether a request names ``attributes`` or ``excludedAttributes`` (RFC 7644 section 3.9).

    Without either, a response is the stored document as it is
    (:func:`response_document`): the protocol layer stored what scim2-models
    dumped from a validated request, with ``password`` (``returned: never``)
    removed, and no attribute of the served schemas is ``returned: request``.
    """
    return parameters is not None and bool(parameters.attributes or parameters.excluded_attributes)


def resource_response(
    kind: ResourceKind,
    stored: Stored,
    base_url: str,
    context: Context,
    parameters: ResponseParameters[Any] | None,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Document:
    """The body answering a single-resource request."""
    if not selects_attributes(parameters):
        return response_document(kind, stored, base_url)
    return dumped_resource_response(kind, stored, base_url, context, parameters, served)


def dumped_resource_response(
    kind: ResourceKind,
    stored: Stored,
    base_url: str,
    context: Context,
    parameters: ResponseParameters[Any] | None,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Document:
    """A single resource as scim2-models dumps it in ``context`` with ``parameters``."""
    resource = stored_resource(kind, stored, base_url, served)
    return resource.model_dump(scim_ctx=context, response_parameters=parameters)


LIST_RESPONSE_SCHEMA: str = str(ListResponse.__schema__)


@cache
def _list_response_model(models: tuple[type[Resource[Any]], ...]) -> Any:
    """``ListResponse[User | Group]`` built once per combination of models.

    Parametrizing a pydantic generic rebuilds its validators, about a
    millisecond a request; there are three combinations per set of schemas.
    """
    model: Any = reduce(or_, models)
    return ListResponse[model]


def list_response(
    kinds: Sequence[ResourceKind],
    total: int,
    start_index: int,
    resources: Sequence[tuple[ResourceKind, Stored]],
    base_url: str,
    context: Context,
    parameters: ResponseParameters[Any] | None,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Document:
    """A ListResponse (RFC 7644 section 3.4.2); ``Resources`` is always present, if empty."""
    if not selects_attributes(parameters):
        return {
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": len(resources),
            "Resources": [response_document(kind, stored, base_url) for kind, stored in resources],
        }
    return dumped_list_response(
        kinds, total, start_index, resources, base_url, context, parameters, served
    )


def dumped_list_response(
    kinds: Sequence[ResourceKind],
    total: int,
    start_index: int,
    resources: Sequence[tuple[ResourceKind, Stored]],
    base_url: str,
    context: Context,
    parameters: ResponseParameters[Any] | None,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> Document:
    """A ListResponse as scim2-models dumps it in ``context`` with ``parameters``."""
    response = _list_response_model(tuple(served.model(kind) for kind in kinds))(
        total_results=total,
        start_index=start_index,
        items_per_page=len(resources),
        resources=[stored_resource(kind, stored, base_url, served) for kind, stored in resources],
    )
    document: Document = response.model_dump(scim_ctx=context, response_parameters=parameters)
    document.setdefault("Resources", [])
    return document
