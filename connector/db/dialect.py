"""The few SQL forms that differ between SQLite and PostgreSQL.

A list of ids travels as ONE bound parameter (an array on PostgreSQL, a JSON
array read by ``json_each`` on SQLite) rather than one parameter per id, so
that a PUT naming 20,000 members stays one statement on both databases and
never meets SQLite's limit on bound variables; no chunking is needed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    FromClause,
    String,
    any_,
    bindparam,
    exists,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute

SqlValue = ColumnElement[Any] | QueryableAttribute[Any]
"""A column, an ORM attribute or any SQL expression."""


def id_table(dialect: str, ids: Collection[str]) -> FromClause:
    """A one-column table (``value``) holding ``ids``."""
    if dialect == "postgresql":
        return func.unnest(_array(ids)).table_valued("value").render_derived()
    return func.json_each(
        bindparam("ids", json.dumps(list(ids)), type_=String(), unique=True)
    ).table_valued("value")


def labelled_id_table(dialect: str, labels: Mapping[str, str | None]) -> FromClause:
    """A two-column table (``id``, ``label``): each key of ``labels`` with its value, or NULL.

    Two arrays unnested side by side on PostgreSQL; the key/value rows of one
    JSON object on SQLite. Still one bound parameter per column.
    """
    if dialect == "postgresql":
        return (
            func.unnest(_array(list(labels)), _array(list(labels.values())))
            .table_valued("id", "label")
            .render_derived()
        )
    pairs = func.json_each(
        bindparam("labels", json.dumps(dict(labels)), type_=String(), unique=True)
    ).table_valued("key", "value")
    return select(pairs.c.key.label("id"), pairs.c.value.label("label")).subquery()


def in_ids(dialect: str, column: SqlValue, ids: Collection[str]) -> ColumnElement[bool]:
    """``column IN ids``, whatever the number of ids, as an index lookup per id.

    ``= ANY(array)`` on PostgreSQL; ``IN (SELECT value FROM json_each(?))``
    on SQLite.
    """
    if dialect == "postgresql":
        return column == any_(_array(ids))
    table = id_table(dialect, ids)
    return column.in_(select(table.c.value))


def not_in_ids(dialect: str, column: SqlValue, ids: Collection[str]) -> ColumnElement[bool]:
    """``column NOT IN ids`` for a non-null column, whatever the number of ids.

    An anti-join on PostgreSQL (hashed, whatever its statistics say); SQLite
    builds a transient index over the list for ``NOT IN``.
    """
    table = id_table(dialect, ids)
    if dialect == "postgresql":
        return ~exists().where(table.c.value == column)
    return column.not_in(select(table.c.value))


def in_bound_ids(dialect: str, column: SqlValue, name: str) -> ColumnElement[bool]:
    """:func:`in_ids` with the ids left to parameter ``name``, for a statement built once.

    Bind :func:`bound_ids` of the ids to ``name`` at each execution.
    """
    if dialect == "postgresql":
        array_type: Any = ARRAY(String())
        return column == any_(bindparam(name, type_=array_type))
    values = func.json_each(bindparam(name, type_=String())).table_valued("value")
    return column.in_(select(values.c.value))


def bound_ids(dialect: str, ids: Collection[str]) -> Any:
    """The value of an :func:`in_bound_ids` parameter: an array, or a JSON array on SQLite."""
    if dialect == "postgresql":
        return list(ids)
    return json.dumps(list(ids))


def _array(values: Collection[str | None]) -> BindParameter[Any]:
    array_type: Any = ARRAY(String())
    return bindparam("ids", list(values), type_=array_type, unique=True)


def contains(dialect: str, column: SqlValue, text: str) -> ColumnElement[bool]:
    """Substring test with ``text`` taken literally and compared with its case.

    PostgreSQL's LIKE is case-sensitive (``%`` and ``_`` escaped); SQLite's is
    not, so SQLite uses ``instr`` instead. Callers fold both sides for
    case-insensitive attributes.
    """
    if text == "":
        return column.is_not(None)
    if dialect == "postgresql":
        return column.contains(text, autoescape=True)
    return func.instr(column, text) > 0


def starts_with(dialect: str, column: SqlValue, text: str) -> ColumnElement[bool]:
    if text == "":
        return column.is_not(None)
    if dialect == "postgresql":
        return column.startswith(text, autoescape=True)
    return func.substr(column, 1, len(text)) == text


def ends_with(dialect: str, column: SqlValue, text: str) -> ColumnElement[bool]:
    if text == "":
        return column.is_not(None)
    if dialect == "postgresql":
        return column.endswith(text, autoescape=True)
    return (func.length(column) >= len(text)) & (func.substr(column, -len(text)) == text)
