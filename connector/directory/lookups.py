"""Equality lookups on an indexed column of ``scim_resources``, with statements built once.

Okta and Entra ID look a resource up before nearly every create:
``userName eq "x"``, ``externalId eq "x"`` (Users), ``displayName eq "x"``
(Groups), sometimes ``id eq "x"`` (RFC 7644 section 3.4.2.2). Such a filter
names one column of ``scim_resources`` with a unique or secondary index, so
its page and its count are two fixed statements whose only variables are the
tenant, the kind, the comparison key and the page bounds. Building a
statement and its cache key costs about as much CPU as running it; these are
built once per process and bound at each execution.

What they select is exactly what :class:`~connector.directory.filters.FilterCompiler`
selects for the same filter: the same comparison key (folded unless the
attribute is case-exact, :meth:`scim.attributes.AttributeInfo.comparison_key`),
the same predicate on the column, the same order (none when the filter pins a
unique key, :func:`~connector.directory.filters.selects_at_most_one`, else
creation order). Any other filter, a sort on a lookup that may match several
resources, or a value the compiler would turn into ``false`` goes to the
compiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim2_models import Resource
from scim2_models.path import CompareOperator, Comparison, FilterNode
from sqlalchemy import ColumnElement, and_, bindparam

from connector.directory.filters import Place, column_operand, locate, selects_at_most_one
from connector.directory.indexing import storable
from connector.directory.tables import RESOURCES
from scim.attributes import ScimType, resolve_attribute
from scim.backend import ListQuery, ResourceKind

LOOKUP_COLUMNS = frozenset({"id", "name_key", "external_id"})
"""The ``scim_resources`` columns an equality is looked up on, each indexed with tenant and kind."""


@dataclass(frozen=True)
class Lookup:
    """An equality filter on one indexed column: ``column = key``."""

    column: str
    """A name of :data:`LOOKUP_COLUMNS`."""

    key: str
    """The comparison key the column is compared with, as the compiler computes it."""

    nullable: bool
    """Whether the column may be NULL, so that the predicate tests it as the compiler does."""

    at_most_one: bool
    """Whether the filter pins a unique key: then no ORDER BY, as in the compiler."""


def equality_lookup(
    model: type[Resource[Any]], kind: ResourceKind, query: ListQuery
) -> Lookup | None:
    """The lookup ``query`` amounts to, or None when the filter compiler must handle it."""
    node: FilterNode | None = query.filter
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
    return Lookup(column=column, key=key, nullable=operand.nullable, at_most_one=at_most_one)


def lookup_where(lookup_column: str, nullable: bool) -> tuple[ColumnElement[bool], ...]:
    """The WHERE clause of a lookup on ``lookup_column``, bound by :func:`lookup_parameters`."""
    column = RESOURCES.c[lookup_column]
    equal: ColumnElement[bool] = column == bindparam("lookup_key")
    if nullable:
        equal = and_(column.is_not(None), equal)
    return (
        RESOURCES.c.org_id == bindparam("lookup_org_id"),
        RESOURCES.c.kind == bindparam("lookup_kind"),
        equal,
    )


def lookup_parameters(lookup: Lookup, org_id: int, kind: ResourceKind) -> dict[str, Any]:
    """The values a statement over :func:`lookup_where` is executed with."""
    return {"lookup_org_id": org_id, "lookup_kind": kind.value, "lookup_key": lookup.key}
