"""List requests answered by statements built once: a whole kind, or an equality lookup.

Okta and Entra ID look a resource up before nearly every create:
``userName eq "x"``, ``externalId eq "x"`` (Users), ``displayName eq "x"``
(Groups), sometimes ``id eq "x"`` (RFC 7644 section 3.4.2.2). Such a filter
names one column of ``scim_resources`` indexed with the tenant and kind, so
its page and its count are two fixed statements whose only variables are the
tenant, the kind, the comparison key and the page bounds; so are those of a
plain page through every resource of a kind (``GET /Users?startIndex=..``).
Building a statement and its cache key costs about as much CPU as running
it: these are built once per process and bound at each execution.

What they select is exactly what
:class:`~connector.directory.filters.FilterCompiler` and
:func:`~connector.directory.filters.sort_order` select for the same request:
the same comparison key (folded unless the attribute is case-exact,
:meth:`scim.attributes.AttributeInfo.comparison_key`), the same predicate on
the column, the same order (none when the filter pins a unique key,
:func:`~connector.directory.filters.selects_at_most_one`, else creation
order). Any other filter, a ``sortBy`` on a request that may match several
resources, or a value the compiler would turn into ``false`` goes to the
compiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim2_models import Resource
from scim2_models.path import CompareOperator, Comparison
from sqlalchemy import ColumnElement, and_, bindparam

from connector.directory.filters import Place, column_operand, locate, selects_at_most_one
from connector.directory.indexing import storable
from connector.directory.tables import RESOURCES
from scim.attributes import ScimType, resolve_attribute
from scim.backend import ListQuery, ResourceKind

LOOKUP_COLUMNS = frozenset({"id", "name_key", "external_id"})
"""The ``scim_resources`` columns an equality is looked up on, each indexed with tenant and kind."""


@dataclass(frozen=True)
class Listing:
    """A list request of one tenant and kind that prepared statements answer.

    Every resource of the kind when ``column`` is None, else those whose
    ``column`` equals ``key``.
    """

    column: str | None
    """None, or a name of :data:`LOOKUP_COLUMNS`."""

    key: str | None
    """The comparison key the column is compared with, as the compiler computes it."""

    nullable: bool
    """Whether the column may be NULL, so that the predicate tests it as the compiler does."""

    ordered: bool
    """In creation order; false when the filter pins a unique key, as in the compiler."""


EVERY_RESOURCE = Listing(column=None, key=None, nullable=False, ordered=True)


def prepared_listing(
    model: type[Resource[Any]], kind: ResourceKind, query: ListQuery
) -> Listing | None:
    """The prepared listing ``query`` amounts to, or None when the compiler must handle it."""
    node = query.filter
    if node is None:
        return EVERY_RESOURCE if query.sort is None else None
    if not isinstance(node, Comparison) or node.op != CompareOperator.eq:
        return None
    value = node.value
    if not isinstance(value, str) or not storable(value):
        return None
    info = resolve_attribute(model, node.attr_path, for_comparison=True)
    if info is None or info.type != ScimType.string or locate(kind, info) is not Place.COLUMN:
        return None
    operand = column_operand(kind, info)
    if operand is None:
        return None
    column = next((name for name in LOOKUP_COLUMNS if operand.key is RESOURCES.c[name]), None)
    if column is None:
        return None
    at_most_one = selects_at_most_one(kind, node)
    if not at_most_one and query.sort is not None:
        return None
    try:
        key = info.comparison_key(value)
    except ValueError:  # a comparison policy that cannot prepare this string
        return None
    return Listing(column=column, key=key, nullable=operand.nullable, ordered=not at_most_one)


def listing_where(column_name: str | None, nullable: bool) -> tuple[ColumnElement[bool], ...]:
    """The WHERE clause of a listing, bound by :func:`listing_parameters`."""
    scope = (
        RESOURCES.c.org_id == bindparam("listing_org_id"),
        RESOURCES.c.kind == bindparam("listing_kind"),
    )
    if column_name is None:
        return scope
    column = RESOURCES.c[column_name]
    equal: ColumnElement[bool] = column == bindparam("listing_key")
    if nullable:
        equal = and_(column.is_not(None), equal)
    return (*scope, equal)


def listing_parameters(listing: Listing, org_id: int, kind: ResourceKind) -> dict[str, Any]:
    """The values a statement over :func:`listing_where` is executed with."""
    parameters: dict[str, Any] = {"listing_org_id": org_id, "listing_kind": kind.value}
    if listing.column is not None:
        parameters["listing_key"] = listing.key
    return parameters
