"""List and search requests: filter, sort, paging, projection (RFC 7644 sections 3.4.2 to 3.9).

The filter is parsed and checked against the resource schema by
scim2-models' :class:`~scim2_models.ScimFilter`, then handed to the backend
as a tree. An attribute the schema does not declare is kept in the tree: the
backend evaluates it to false (RFC 7644 section 3.4.2.1). ``sortBy``,
``attributes`` and ``excludedAttributes`` are read by scim2-models'
:class:`~scim2_models.SearchRequest`, which refuses a ``sortBy`` naming no
sortable attribute with ``invalidPath``: an ignored sort would hand the client
an order it cannot tell from the one it asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import or_
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    Extension,
    InvalidFilterException,
    InvalidValueException,
    Resource,
    ResponseParameters,
    SearchRequest,
)
from scim2_models.path import AttributeBinding, FilterNode, LogicalExpr, Not, ValuePath

from scim.backend import ListQuery, ResourceKind, SortKey
from scim.errors import exception_from_validation_error
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas
from scim.filter_shapes import parse_filter_text
from scim.limits import count_value_path_comparisons
from scim.resources import MEMBERSHIP_ATTRIBUTE
from scim.settings import ScimSettings

MAX_START_INDEX = 2**63 - 1
"""The largest ``startIndex`` accepted (RFC 7644 section 3.4.2.4 sets no bound; SQL does)."""

QUERY_PARAMETERS = {
    name.lower(): name
    for name in (
        "filter",
        "attributes",
        "excludedAttributes",
        "sortBy",
        "sortOrder",
        "startIndex",
        "count",
    )
}
"""The query parameters of RFC 7644 sections 3.4.2 and 3.9, by lowercased name."""


@dataclass(frozen=True)
class ListRequest:
    """A parsed list or search request: what to ask the backend and how to answer."""

    query: ListQuery
    parameters: SearchRequest[Any]
    """``attributes`` and ``excludedAttributes`` (and the rest) to serialize the page with."""


def query_parameters(args: Mapping[str, str]) -> dict[str, str]:
    """The SCIM parameters of a query string, under their canonical names; others are ignored."""
    parameters: dict[str, str] = {}
    for name, value in args.items():
        canonical = QUERY_PARAMETERS.get(name.lower())
        if canonical is not None:
            parameters[canonical] = value
    return parameters


def parse_list_request(
    kind: ResourceKind,
    payload: Mapping[str, Any],
    settings: ScimSettings,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> ListRequest:
    """Read a list query (GET) or a SearchRequest body (POST ``.search``) for one resource type."""
    return parse_search(payload, settings, [kind], served)[kind]


def parse_search(
    payload: Mapping[str, Any],
    settings: ScimSettings,
    kinds: Sequence[ResourceKind],
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> dict[ResourceKind, ListRequest]:
    """Read a search over one or several resource types (RFC 7644 section 3.4.3).

    The request is validated against all of them, so that a ``sortBy`` any of
    them declares is valid; each type then gets its own query, in which an
    attribute it does not declare sorts nothing and filters to false
    (RFC 7644 section 3.4.2.1).
    """
    fields = dict(payload)
    raw_filter = _pop_case_insensitive(fields, "filter")
    models: Any = reduce(or_, (served.model(kind) for kind in kinds))
    parameters = search_parameters(fields, models)

    if parameters.start_index is not None and parameters.start_index > MAX_START_INDEX:
        # The offset is a 64-bit integer in SQL on every database.
        raise InvalidValueException(detail=f"startIndex must be at most {MAX_START_INDEX}")
    count = page_size(parameters, settings)
    requests = {}
    for kind in kinds:
        model = served.model(kind)
        scim_filter = (
            parse_filter(kind, raw_filter, settings, served) if raw_filter is not None else None
        )
        query = ListQuery(
            filter=scim_filter,
            sort=sort_key(parameters, model),
            start_index=parameters.start_index or 1,
            count=count,
            include_members=wants_attribute(parameters, MEMBERSHIP_ATTRIBUTE[kind], model),
        )
        requests[kind] = ListRequest(query=query, parameters=parameters)
    return requests


def search_parameters(fields: Mapping[str, Any], models: Any) -> SearchRequest[Any]:
    """The parameters of a list or search request but its filter, validated against ``models``.

    ``sortOrder`` is compared case-insensitively ("DESCENDING" is accepted).
    """
    fields = dict(fields)
    order_key = next((key for key in fields if key.lower() == "sortorder"), None)
    if order_key is not None and isinstance(fields[order_key], str):
        fields[order_key] = fields[order_key].lower()
    if all(isinstance(value, str) for value in fields.values()):
        # A query string: the same few parameters come again and again.
        validated = _validated_query_parameters(models, tuple(fields.items()))
        return validated.model_copy()
    return _validated_search_parameters(models, fields)


@functools.lru_cache(maxsize=256)
def _validated_query_parameters(
    models: Any, fields: tuple[tuple[str, str], ...]
) -> SearchRequest[Any]:
    """:func:`_validated_search_parameters` of string parameters, remembered.

    Callers get a copy: the remembered request is never handed out.
    """
    return _validated_search_parameters(models, dict(fields))


def _validated_search_parameters(models: Any, fields: dict[str, Any]) -> SearchRequest[Any]:
    try:
        return SearchRequest[models].model_validate(fields, scim_ctx=Context.SEARCH_REQUEST)
    except ValidationError as exc:
        raise exception_from_validation_error(exc) from exc


def page_size(parameters: SearchRequest[Any], settings: ScimSettings) -> int:
    """The page size asked for (``count``), else the default, within the advertised maximum."""
    count = settings.default_page_size if parameters.count is None else parameters.count
    return min(count, settings.max_page_size)


def parse_filter(
    kind: ResourceKind, text: Any, settings: ScimSettings, served: ServedSchemas = DEFAULT_SCHEMAS
) -> FilterNode:
    """Parse and check a filter within the advertised limits (RFC 7644 section 3.4.2.2)."""
    return parse_model_filter(served.model(kind), text, settings)


def parse_model_filter(model: type[Resource[Any]], text: Any, settings: ScimSettings) -> FilterNode:
    """Parse a filter against ``model``'s schema, within the advertised limits."""
    if not isinstance(text, str):
        raise InvalidFilterException(detail="filter must be a string")
    if len(text) > settings.max_filter_length:
        raise InvalidFilterException(
            detail=f"filter is longer than {settings.max_filter_length} characters"
        )
    parsed = parse_filter_text(model, text)
    comparisons = count_comparisons(parsed)
    if comparisons > settings.max_filter_comparisons:
        raise InvalidFilterException(
            detail=f"filter has {comparisons} comparisons, "
            f"more than the {settings.max_filter_comparisons} allowed"
        )
    # Each comparison in a value path is evaluated against every entry of the
    # tenant's attribute index, so it has a lower cap of its own.
    in_value_paths = count_value_path_comparisons(parsed)
    if in_value_paths > settings.max_value_path_comparisons:
        raise InvalidFilterException(
            detail=f"filter has {in_value_paths} comparisons inside value paths (attr[...]), "
            f"more than the {settings.max_value_path_comparisons} allowed"
        )
    return parsed


def count_comparisons(node: FilterNode) -> int:
    """How many comparisons and presence tests a filter evaluates."""
    if isinstance(node, LogicalExpr):
        return sum(count_comparisons(term) for term in node.terms)
    if isinstance(node, Not):
        return count_comparisons(node.expr)
    if isinstance(node, ValuePath):
        return count_comparisons(node.val_filter)
    return 1


def sort_key(parameters: SearchRequest[Any], model: type[Resource[Any]]) -> SortKey | None:
    """``sortBy``/``sortOrder`` as a canonical attribute path (RFC 7644 section 3.4.2.3)."""
    binding = parameters.sort_binding(model)
    if binding is None:
        return None
    descending = parameters.sort_order == SearchRequest.SortOrder.descending
    return SortKey(attribute=canonical_path(binding), descending=descending)


def canonical_path(binding: AttributeBinding) -> str:
    """``name.familyName``, ``emails.value``, or ``<extension URN>:<attribute>[.<sub>]``."""
    path = binding.model._scim_name(binding.field_name)
    sub_model = binding.field_type
    if binding.sub_field_name is not None and isinstance(sub_model, type):
        path += "." + sub_model._scim_name(binding.sub_field_name)  # type: ignore[attr-defined]
    if issubclass(binding.model, Extension):
        path = f"{binding.model.__schema__}:{path}"
    return path


def wants_attribute(
    parameters: ResponseParameters[Any] | None, attribute: str, model: type[Resource[Any]]
) -> bool:
    """Whether a response projected by ``attributes``/``excludedAttributes`` carries an attribute.

    Used to skip loading a group's members or a user's groups altogether when
    the client excluded them (RFC 7644 section 3.9), as Entra ID does.
    """
    if parameters is None:
        return True
    qualified = f"{model.__schema__}:{attribute}".lower()
    names = {attribute.lower(), qualified}
    if parameters.excluded_attributes:
        excluded = {str(path).lower() for path in parameters.excluded_attributes}
        if names & excluded:
            return False
    if parameters.attributes:
        requested = [str(path).lower() for path in parameters.attributes]
        return any(
            name == candidate or name.startswith(candidate + ".")
            for name in requested
            for candidate in names
        )
    return True


def _pop_case_insensitive(fields: dict[str, Any], name: str) -> Any:
    for key in list(fields):
        if key.lower() == name:
            return fields.pop(key)
    return None
