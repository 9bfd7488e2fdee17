"""SCIM filters and sort keys compiled to SQL (RFC 7644 sections 3.4.2.2 and 3.4.2.3).

One table says where each attribute lives (:func:`locate`): a column of
``scim_resources`` (id, userName or displayName, externalId, active,
meta.created, meta.lastModified), the memberships in ``group_members``
(Group ``members``, User ``groups``), or the value index
``scim_attribute_values`` for everything else. The filter visitor and the
sort both read it. Nothing is ever evaluated over rows in Python.

Semantics chosen where RFC 7644 leaves room:

- ``ne`` is ``not eq``: it matches a resource that lacks the attribute, and on
  a multi-valued attribute it matches when no value equals the operand (the
  reading of scim2-models' ``ScimFilter.match``). ``not (...)`` is plain
  negation, so it also matches resources lacking the attribute.
- ``eq null`` matches a resource lacking the attribute, ``ne null`` one having it.
- An attribute the models do not declare matches nothing, never an error
  (RFC 7644 section 3.4.2.1). So do ``$ref`` sub-attributes of memberships,
  ``meta.location`` and ``meta.version``.
- A value path keeps its sub-conditions on one element of the attribute:
  ``emails[type eq "work" and value co "@x"]`` needs one email that is both.
- ``pr`` means "has a non-empty value": an empty string is present for
  ``eq ""`` but not for ``pr``.
- Values longer than the 512-character ``value_key`` compare on their full
  text for ``eq``, ``sw``, ``co`` and ``ew``; ordering operators compare the
  first 512 characters only. Lower-casing inside SQL (long values, member
  display names) is ASCII-only on SQLite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from scim2_models import Resource
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    except_,
    exists,
    false,
    func,
    intersect,
    literal,
    not_,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.sql.expression import CompoundSelect

from connector.db import dialect as sql
from connector.db.dialect import SqlValue
from connector.directory.indexing import KEY_LENGTH, parse_datetime, storable
from connector.directory.tables import ATTRIBUTE_VALUES, GROUP_MEMBERS, RESOURCES
from scim.attributes import AttributeInfo, ScimType, resolve_attribute, resolve_sub_attribute
from scim.backend import ResourceKind, SortKey
from scim.resources import MEMBERSHIP_ATTRIBUTE, NAME_ATTRIBUTE

_STRING_TYPES = frozenset({ScimType.string, ScimType.reference, ScimType.binary})


class Place(Enum):
    """Where the values of an attribute are kept."""

    COLUMN = "column"
    MEMBERSHIP = "membership"
    INDEX = "index"
    NOWHERE = "nowhere"


@dataclass(frozen=True)
class Operand:
    """The SQL expressions a comparison reads an attribute's value from.

    ``key`` holds string comparison keys (folded unless case-exact); ``text``
    the full original text where ``key`` may be a prefix; the others the typed
    values. ``nullable`` marks an expression that may be NULL, which a
    predicate must turn into false so that ``not`` stays two-valued.
    """

    key: SqlValue | None = None
    text: SqlValue | None = None
    number: SqlValue | None = None
    boolean: SqlValue | None = None
    time: SqlValue | None = None
    nullable: bool = False


_COLUMN_OPERANDS: dict[str, Operand] = {
    "id": Operand(key=RESOURCES.c.id),
    "externalid": Operand(key=RESOURCES.c.external_id, nullable=True),
    "meta.created": Operand(time=RESOURCES.c.created_at),
    "meta.lastmodified": Operand(time=RESOURCES.c.modified_at),
}
_NAME_PATHS = {kind: name.lower() for kind, name in NAME_ATTRIBUTE.items()}


def locate(kind: ResourceKind, info: AttributeInfo) -> Place:
    """Where ``info``'s values are kept for a resource of ``kind``."""
    path = info.path
    if path in _COLUMN_OPERANDS or path == _NAME_PATHS[kind] or path == "meta.resourcetype":
        return Place.COLUMN
    if kind is ResourceKind.USER and path == "active":
        return Place.COLUMN
    if path.split(".", 1)[0] == MEMBERSHIP_ATTRIBUTE[kind]:
        return Place.MEMBERSHIP
    if path.startswith("meta") or path == "password":
        return Place.NOWHERE
    return Place.INDEX


def column_operand(kind: ResourceKind, info: AttributeInfo) -> Operand | None:
    if info.path == _NAME_PATHS[kind]:
        return Operand(key=RESOURCES.c.name_key)
    if info.path == "active":
        return Operand(boolean=RESOURCES.c.active, nullable=True)
    if info.path == "meta.resourcetype":
        return Operand(key=literal(info.comparison_key(kind.value)))
    return _COLUMN_OPERANDS.get(info.path)


class FilterCompiler(FilterVisitor[ColumnElement[bool]]):
    """A filter tree to a WHERE clause over ``scim_resources`` of one tenant and kind."""

    def __init__(
        self, model: type[Resource[Any]], kind: ResourceKind, org_id: int, dialect: str
    ) -> None:
        self.model = model
        self.kind = kind
        self.org_id = org_id
        self.dialect = dialect

    # -- the visitor -----------------------------------------------------

    def visit_logical_expr(self, node: LogicalExpr) -> ColumnElement[bool]:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_not(self, node: Not) -> ColumnElement[bool]:
        return not_(self.visit(node.expr))

    def visit_present(self, node: Present) -> ColumnElement[bool]:
        info = resolve_attribute(self.model, node.attr_path)
        if info is None:
            return false()
        return self._present(info)

    def visit_comparison(self, node: Comparison) -> ColumnElement[bool]:
        info = resolve_attribute(self.model, node.attr_path, for_comparison=True)
        if info is None:
            return false()
        if node.op == CompareOperator.ne:
            return not_(self._equal_or_compare(info, CompareOperator.eq, node.value))
        return self._equal_or_compare(info, node.op, node.value)

    def visit_value_path(self, node: ValuePath) -> ColumnElement[bool]:
        info = resolve_attribute(self.model, node.attr_path)
        if info is None or node.sub_attr is not None:
            return false()
        place = locate(self.kind, info)
        if place is Place.MEMBERSHIP:
            return self._membership(info, node.val_filter)
        if place is not Place.INDEX:
            return false()
        elements = ElementSets(self, info).visit(node.val_filter)
        found = _flatten(elements).subquery()
        return RESOURCES.c.id.in_(select(found.c.resource_id))

    # -- atoms -------------------------------------------------------------

    def _equal_or_compare(
        self, info: AttributeInfo, op: CompareOperator, value: Any
    ) -> ColumnElement[bool]:
        if value is None:
            return not_(self._present(info)) if op == CompareOperator.eq else false()
        place = locate(self.kind, info)
        if place is Place.COLUMN:
            operand = column_operand(self.kind, info)
            if operand is None:
                return false()
            return self.predicate(info, op, value, operand)
        if place is Place.MEMBERSHIP:
            leaf = Comparison(AttrPath(info.name), op, value)
            return self._membership(_membership_parent(self.model, info), leaf)
        if place is Place.INDEX:
            value_row = ATTRIBUTE_VALUES.c
            matches = select(value_row.resource_id).where(
                value_row.org_id == self.org_id,
                value_row.path == info.path,
                self.predicate(info, op, value, index_operand(value_row)),
            )
            return RESOURCES.c.id.in_(matches)
        return false()

    def _present(self, info: AttributeInfo) -> ColumnElement[bool]:
        place = locate(self.kind, info)
        if place is Place.COLUMN:
            operand = column_operand(self.kind, info)
            column = _any_column(operand)
            if column is None or operand is None:
                return false()
            return column.is_not(None) if operand.nullable else true()
        if place is Place.MEMBERSHIP:
            if info.parent is None:
                return self._membership(info, None)
            return self._membership(
                _membership_parent(self.model, info), Present(AttrPath(info.name))
            )
        if place is Place.INDEX:
            paths = list(info.sub_attributes) or [info.path]
            value_row = ATTRIBUTE_VALUES.c
            matches = select(value_row.resource_id).where(
                value_row.org_id == self.org_id, value_row.path.in_(paths), _non_empty(value_row)
            )
            return RESOURCES.c.id.in_(matches)
        if info.path == "meta":
            return true()
        return false()

    def _membership(
        self, info: AttributeInfo, val_filter: FilterNode | None
    ) -> ColumnElement[bool]:
        """Group ``members`` / User ``groups`` through ``group_members`` rows."""
        member = GROUP_MEMBERS.c
        own, other = (
            (member.group_id, member.user_id)
            if self.kind is ResourceKind.GROUP
            else (member.user_id, member.group_id)
        )
        if val_filter is None:
            return exists().where(own == RESOURCES.c.id)
        related = RESOURCES.alias()
        elements = MembershipElements(self, info, other, related.c)
        condition = elements.visit(val_filter)
        query = select(own).where(member.org_id == self.org_id, condition)
        if elements.joins_related:
            query = query.join(related, related.c.id == other)
        return RESOURCES.c.id.in_(query)

    # -- comparing one operand --------------------------------------------

    def predicate(
        self, info: AttributeInfo, op: CompareOperator, value: Any, operand: Operand
    ) -> ColumnElement[bool]:
        """``operand op value`` for the type of ``info``, false where it has no meaning."""
        if isinstance(value, str) and not storable(value):
            return false()
        scim_type = info.type
        predicate: ColumnElement[bool] | None = None
        column: SqlValue | None = None
        if scim_type in _STRING_TYPES:
            column = operand.key
            key = _comparison_key(info, value)
            if key is not None and column is not None:
                predicate = self._string(info, op, key, column, operand.text)
        elif scim_type == ScimType.boolean:
            column = operand.boolean
            if isinstance(value, bool) and column is not None and op == CompareOperator.eq:
                predicate = column == value
        elif scim_type in (ScimType.integer, ScimType.decimal):
            column = operand.number
            number = _finite(value)
            if number is not None and column is not None:
                predicate = _order(op, column, number)
        elif scim_type == ScimType.date_time:
            predicate, column = self._date_time(info, op, value, operand)
        if predicate is None or column is None:
            return false()
        if operand.nullable:
            return and_(column.is_not(None), predicate)
        return predicate

    def _string(
        self,
        info: AttributeInfo,
        op: CompareOperator,
        key: str,
        column: SqlValue,
        text: SqlValue | None,
    ) -> ColumnElement[bool] | None:
        full = None if text is None else (text if info.case_exact else func.lower(text))
        long_value = func.length(column) >= KEY_LENGTH
        if op == CompareOperator.eq:
            if full is None or len(key) < KEY_LENGTH:
                return column == key
            return and_(column == key[:KEY_LENGTH], full == key)
        if op == CompareOperator.sw:
            if full is None or len(key) <= KEY_LENGTH:
                return self._substring(op, column, key)
            return and_(column == key[:KEY_LENGTH], self._substring(op, full, key))
        if op in (CompareOperator.co, CompareOperator.ew):
            found = self._substring(op, column, key)
            if full is None:
                return found
            return or_(found, and_(long_value, self._substring(op, full, key)))
        return _order(op, column, key)

    def _substring(self, op: CompareOperator, column: SqlValue, key: str) -> ColumnElement[bool]:
        if key == "":
            return column.is_not(None)
        if op == CompareOperator.co:
            return sql.contains(self.dialect, column, key)
        if op == CompareOperator.sw:
            return sql.starts_with(self.dialect, column, key)
        return sql.ends_with(self.dialect, column, key)

    def _date_time(
        self, info: AttributeInfo, op: CompareOperator, value: Any, operand: Operand
    ) -> tuple[ColumnElement[bool] | None, SqlValue | None]:
        if op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
            if operand.text is None or not isinstance(value, str):
                return None, None
            return self._substring(op, operand.text, value), operand.text
        moment = value if isinstance(value, datetime) else None
        if isinstance(value, str):
            moment = parse_datetime(value)
        if moment is None or operand.time is None:
            return None, None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return _order(op, operand.time, moment.astimezone(UTC)), operand.time


def _comparison_key(info: AttributeInfo, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return info.comparison_key(value)
    except ValueError:  # a comparison policy that cannot prepare this string
        return None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _non_empty(value_row: Any) -> ColumnElement[bool]:
    """A value ``pr`` counts: RFC 7644 section 3.4.2.2 "non-empty or non-null"."""
    return or_(value_row.value_text.is_(None), value_row.value_text != "")


def index_operand(value_row: Any) -> Operand:
    """The typed columns of a ``scim_attribute_values`` row (or an alias of it)."""
    return Operand(
        key=value_row.value_key,
        text=value_row.value_text,
        number=value_row.value_number,
        boolean=value_row.value_bool,
        time=value_row.value_time,
    )


def _order(op: CompareOperator, column: SqlValue, value: Any) -> ColumnElement[bool] | None:
    predicate: ColumnElement[bool] | None = None
    if op == CompareOperator.eq:
        predicate = column == value
    elif op == CompareOperator.gt:
        predicate = column > value
    elif op == CompareOperator.ge:
        predicate = column >= value
    elif op == CompareOperator.lt:
        predicate = column < value
    elif op == CompareOperator.le:
        predicate = column <= value
    return predicate


def _any_column(operand: Operand | None) -> SqlValue | None:
    if operand is None:
        return None
    for column in (operand.key, operand.boolean, operand.number, operand.time):
        if column is not None:
            return column
    return None


def _membership_parent(model: type[Resource[Any]], info: AttributeInfo) -> AttributeInfo:
    parent = resolve_attribute(model, info.parent or info.path)
    assert parent is not None
    return parent


ElementSet = Select[str, int] | CompoundSelect[str, int]


def _flatten(elements: ElementSet) -> Select[str, int]:
    """A plain SELECT of (resource_id, element): SQLite refuses nested compound selects."""
    if isinstance(elements, Select):
        return elements
    inner = elements.subquery()
    return select(inner.c.resource_id, inner.c.element)


class ElementSets(FilterVisitor[ElementSet]):
    """The filter of a value path to the set of (resource, element) pairs it selects.

    ``and``/``or``/``not`` become INTERSECT/UNION/EXCEPT over index rows, so
    that every sub-condition holds on the same element (RFC 7644 section
    3.4.2.2, ``valuePath``).
    """

    def __init__(self, compiler: FilterCompiler, parent: AttributeInfo) -> None:
        self.compiler = compiler
        self.parent = parent

    def _rows(self, *conditions: ColumnElement[bool]) -> Select[str, int]:
        value_row = ATTRIBUTE_VALUES.c
        return select(value_row.resource_id, value_row.element).where(
            value_row.org_id == self.compiler.org_id, *conditions
        )

    def _all(self) -> Select[str, int]:
        paths = list(self.parent.sub_attributes) or [self.parent.path]
        return self._rows(ATTRIBUTE_VALUES.c.path.in_(paths))

    def _none(self) -> Select[str, int]:
        return self._rows(false())

    def visit_comparison(self, node: Comparison) -> ElementSet:
        info = resolve_sub_attribute(self.compiler.model, self.parent, node.attr_path)
        if info is None:
            return self._all() if node.op == CompareOperator.ne else self._none()
        if node.op == CompareOperator.ne:
            return except_(self._all(), _flatten(self._equal(info, node.value)))
        if node.value is None:
            return self._equal(info, None) if node.op == CompareOperator.eq else self._none()
        return self._compare(info, node.op, node.value)

    def _equal(self, info: AttributeInfo, value: Any) -> ElementSet:
        if value is None:
            return except_(self._all(), self._rows(ATTRIBUTE_VALUES.c.path == info.path))
        return self._compare(info, CompareOperator.eq, value)

    def _compare(self, info: AttributeInfo, op: CompareOperator, value: Any) -> Select[str, int]:
        value_row = ATTRIBUTE_VALUES.c
        return self._rows(
            value_row.path == info.path,
            self.compiler.predicate(info, op, value, index_operand(value_row)),
        )

    def visit_present(self, node: Present) -> ElementSet:
        info = resolve_sub_attribute(self.compiler.model, self.parent, node.attr_path)
        if info is None:
            return self._none()
        value_row = ATTRIBUTE_VALUES.c
        return self._rows(value_row.path == info.path, _non_empty(value_row))

    def visit_not(self, node: Not) -> ElementSet:
        return except_(self._all(), _flatten(self.visit(node.expr)))

    def visit_logical_expr(self, node: LogicalExpr) -> ElementSet:
        terms = [_flatten(self.visit(term)) for term in node.terms]
        if node.op == LogicalOperator.and_:
            return intersect(*terms)
        return union(*terms)

    def visit_value_path(self, node: ValuePath) -> ElementSet:
        return self._none()  # RFC 7644 section 3.4.2.2 grammar: no value path inside one


class MembershipElements(FilterVisitor[ColumnElement[bool]]):
    """A filter on one ``group_members`` row, the element of ``members``/``groups``.

    ``value`` is the other side's id; ``display`` the group's displayName
    (User ``groups``) or, as the store shows it, the member's stored label
    else the user's displayName else userName (Group ``members``); ``type``
    is ``User`` or ``direct`` (RFC 7643 sections 4.1.2 and 4.2). ``$ref`` is
    not stored and matches nothing.
    """

    def __init__(
        self,
        compiler: FilterCompiler,
        parent: AttributeInfo,
        other_id: SqlValue,
        related: Any,
    ) -> None:
        self.compiler = compiler
        self.parent = parent
        self.other_id = other_id
        self.related = related
        self.joins_related = False

    def _operand(self, info: AttributeInfo) -> Operand | None:
        if info.name == "value":
            return Operand(key=self.other_id)
        if info.name == "type":
            member_type = "User" if self.compiler.kind is ResourceKind.GROUP else "direct"
            return Operand(key=literal(info.comparison_key(member_type)))
        if info.name == "display":
            self.joins_related = True
            if self.compiler.kind is ResourceKind.USER:
                return Operand(key=self.related.name_key)
            shown = func.coalesce(
                GROUP_MEMBERS.c.display,
                self.related.document["displayName"].as_string(),
                self.related.name,
            )
            return Operand(key=shown if info.case_exact else func.lower(shown))
        return None

    def visit_comparison(self, node: Comparison) -> ColumnElement[bool]:
        info = resolve_sub_attribute(self.compiler.model, self.parent, node.attr_path)
        operand = None if info is None else self._operand(info)
        if info is None or operand is None:
            return true() if node.op == CompareOperator.ne else false()
        if node.op == CompareOperator.ne:
            return not_(self._compare(info, CompareOperator.eq, node.value, operand))
        return self._compare(info, node.op, node.value, operand)

    def _compare(
        self, info: AttributeInfo, op: CompareOperator, value: Any, operand: Operand
    ) -> ColumnElement[bool]:
        if value is None:
            return false()
        return self.compiler.predicate(info, op, value, operand)

    def visit_present(self, node: Present) -> ColumnElement[bool]:
        info = resolve_sub_attribute(self.compiler.model, self.parent, node.attr_path)
        if info is None or self._operand(info) is None:
            return false()
        return true()

    def visit_not(self, node: Not) -> ColumnElement[bool]:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> ColumnElement[bool]:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_value_path(self, node: ValuePath) -> ColumnElement[bool]:
        return false()


def sort_order(
    model: type[Resource[Any]], kind: ResourceKind, sort: SortKey | None
) -> list[ColumnElement[Any]]:
    """ORDER BY for ``sortBy``/``sortOrder`` (RFC 7644 section 3.4.2.3), ties broken by id.

    A multi-valued attribute sorts by its primary value, else its first one.
    Resources without a value come last in ascending order (first in
    descending order, its exact reverse). Without ``sortBy``, or with one the
    store cannot sort by, resources come in creation order.
    """
    expression = None if sort is None else sort_expression(model, kind, sort.attribute)
    order = creation_order()
    if expression is None or sort is None:
        return order
    if sort.descending:
        order = [expression.desc().nulls_first(), RESOURCES.c.id.asc()]
    else:
        order = [expression.asc().nulls_last(), RESOURCES.c.id.asc()]
    return order


def creation_order() -> list[ColumnElement[Any]]:
    """ORDER BY without ``sortBy``: oldest first, ties broken by id."""
    return [RESOURCES.c.created_at.asc(), RESOURCES.c.id.asc()]


def sort_expression(
    model: type[Resource[Any]], kind: ResourceKind, attribute: str
) -> SqlValue | None:
    info = resolve_attribute(model, attribute, for_comparison=True)
    if info is None:
        return None
    place = locate(kind, info)
    if place is Place.COLUMN:
        return _any_column(column_operand(kind, info))
    if place is not Place.INDEX or info.is_complex:
        return None
    value_row = ATTRIBUTE_VALUES.alias().c
    column = {
        ScimType.boolean: value_row.value_bool,
        ScimType.integer: value_row.value_number,
        ScimType.decimal: value_row.value_number,
        ScimType.date_time: value_row.value_time,
    }.get(info.type, value_row.value_key)
    query = select(column).where(
        value_row.resource_id == RESOURCES.c.id, value_row.path == info.path
    )
    if info.in_multi_valued and info.parent is not None:
        primary = ATTRIBUTE_VALUES.alias().c
        is_primary = exists().where(
            primary.resource_id == value_row.resource_id,
            primary.element == value_row.element,
            primary.path == f"{info.parent}.primary",
            primary.value_bool.is_(True),
        )
        query = query.order_by(case((is_primary, 0), else_=1), value_row.element)
    else:
        query = query.order_by(value_row.element)
    return query.limit(1).scalar_subquery()


_UNIQUE_KEYS = {ResourceKind.USER: {"id", "username"}, ResourceKind.GROUP: {"id", "displayname"}}


def selects_at_most_one(kind: ResourceKind, node: FilterNode | None) -> bool:
    """Whether a filter pins a unique key (``userName eq``, ``displayName eq``, ``id eq``).

    Such a lookup (the one Okta and Entra make before every create) needs no
    ORDER BY; leaving it out keeps PostgreSQL on the unique index even before
    its statistics have caught up with an initial load, when an ordered scan
    of the creation index would otherwise look cheaper to the planner.
    """
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        return any(selects_at_most_one(kind, term) for term in node.terms)
    if not isinstance(node, Comparison) or node.op != CompareOperator.eq:
        return False
    path = node.attr_path
    core = path.uri is None or path.uri.lower().startswith("urn:ietf:params:scim:schemas:core:")
    return core and path.sub_attr is None and path.attr.lower() in _UNIQUE_KEYS[kind]


def matching_users(
    model: type[Resource[Any]], org_id: int, dialect: str, node: FilterNode
) -> Select[tuple[str]]:
    """The ids of the organization's users a filter selects, as one SELECT.

    What a mapping rule's condition reaches (docs/rules.md#mapping-rules): a
    change of product state recomputes exactly those users.
    """
    compiler = FilterCompiler(model, ResourceKind.USER, org_id, dialect)
    return select(RESOURCES.c.id).where(
        RESOURCES.c.org_id == org_id,
        RESOURCES.c.kind == ResourceKind.USER.value,
        compiler.visit(node),
    )
