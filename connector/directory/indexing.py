"""From a SCIM document to the rows the store writes: checked first, then indexed.

Every value is checked before the database is touched, so that a value it
cannot store (a NUL character, a lone surrogate, an over-long key, a number
out of range) answers ``invalidValue`` (RFC 7644 section 3.12) instead of a
database error halfway through a write.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scim2_models import InvalidValueException, Mutability, Resource, Returned

from scim.attributes import LeafValue, ScimType, iter_leaf_values
from scim.backend import Document, ResourceKind
from scim.resources import MEMBERSHIP_ATTRIBUTE, NAME_ATTRIBUTE

KEY_LENGTH = 512
"""Length of ``name_key``, ``external_id`` and ``value_key`` (tables.py)."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

_MAX_FLOAT = 1.7976931348623157e308

DIRECT_PATHS: dict[ResourceKind, frozenset[str]] = {
    ResourceKind.USER: frozenset({"id", "username", "externalid", "active"}),
    ResourceKind.GROUP: frozenset({"id", "displayname", "externalid"}),
}
"""Attributes kept in columns of ``scim_resources`` rather than in the value index."""


@dataclass(frozen=True)
class ResourceColumns:
    """The columns of ``scim_resources`` a document sets."""

    name: str
    name_key: str
    external_id: str | None
    active: bool | None


def check_storable(document: Mapping[str, Any]) -> None:
    """Refuse any string, key included, that the database cannot store."""
    for where, text in _strings(document, ""):
        if _UNSTORABLE.search(text):
            raise InvalidValueException(
                detail=f"{where or 'the document'} contains a NUL character or an unpaired "
                "surrogate, which cannot be stored"
            )


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if isinstance(key, str):
                yield name, key
            yield from _strings(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, where)


def stored_document(kind: ResourceKind, document: Mapping[str, Any]) -> Document:
    """The document as kept: as given, minus what the store computes or must not keep.

    ``id`` and ``meta`` are the store's (RFC 7643 section 3.1), ``members`` and
    ``groups`` live in ``group_members``, and ``password`` is write-only and
    never returned (RFC 7643 section 4.1.1): Hub does not authenticate users
    with it, so it is not kept at all.
    """
    dropped = {"id", "meta", MEMBERSHIP_ATTRIBUTE[kind].lower()}
    if kind is ResourceKind.USER:
        dropped.add("password")
    return {key: value for key, value in document.items() if key.lower() not in dropped}


def resource_columns(
    kind: ResourceKind, document: Mapping[str, Any], name_key: Callable[[str], str]
) -> ResourceColumns:
    """userName (User) or displayName (Group), externalId and active, checked for size.

    The unique key is the name's comparison key, ``name_key(name)``: lower-cased
    and NFC-normalized, as filters compare it (RFC 7643 sections 4.1.1 and 4.2).
    """
    attribute = NAME_ATTRIBUTE[kind]
    name = _get(document, attribute)
    if not isinstance(name, str) or not name:
        raise InvalidValueException(detail=f"'{attribute}' is required and must be a string")
    key = name_key(name)
    if len(key) > KEY_LENGTH:
        raise InvalidValueException(
            detail=f"'{attribute}' is longer than {KEY_LENGTH} characters, which cannot be stored"
        )
    external_id = _get(document, "externalId")
    if external_id is not None and not isinstance(external_id, str):
        raise InvalidValueException(detail="'externalId' must be a string")
    if external_id is not None and len(external_id) > KEY_LENGTH:
        raise InvalidValueException(
            detail=f"'externalId' is longer than {KEY_LENGTH} characters, which cannot be stored"
        )
    active = _get(document, "active") if kind is ResourceKind.USER else None
    if active is not None and not isinstance(active, bool):
        raise InvalidValueException(detail="'active' must be a boolean")
    return ResourceColumns(name=name, name_key=key, external_id=external_id or None, active=active)


def _get(document: Mapping[str, Any], attribute: str) -> Any:
    wanted = attribute.lower()
    for key, value in document.items():
        if key.lower() == wanted:
            return value
    return None


def value_rows(
    model: type[Resource[Any]],
    kind: ResourceKind,
    document: Mapping[str, Any],
    resource_id: str,
    org_id: int,
) -> list[dict[str, Any]]:
    """The ``scim_attribute_values`` rows of one document (RFC 7644 section 3.4.2.2).

    Values of attributes kept in columns, write-only or computed ones are not
    indexed. Empty strings are, so that ``eq ""`` finds them; ``pr``
    ("non-empty or non-null") skips them.
    """
    skipped = DIRECT_PATHS[kind]
    # The membership attribute is served from ``group_members`` (RFC 7643 section 4).
    computed = MEMBERSHIP_ATTRIBUTE[kind]
    rows = []
    for leaf in iter_leaf_values(model, document):
        if leaf.path in skipped or leaf.path.split(".", 1)[0] in (computed, "meta"):
            continue
        if leaf.info.mutability == Mutability.write_only or leaf.info.returned == Returned.never:
            continue
        row = _typed_row(leaf)
        row.update(resource_id=resource_id, org_id=org_id, path=leaf.path, element=leaf.element)
        rows.append(row)
    return rows


def _typed_row(leaf: LeafValue) -> dict[str, Any]:
    value = leaf.value
    row: dict[str, Any] = {
        "value_text": None,
        "value_key": None,
        "value_number": None,
        "value_bool": None,
        "value_time": None,
    }
    scim_type = leaf.info.type
    if scim_type == ScimType.boolean:
        if not isinstance(value, bool):
            raise InvalidValueException(detail=f"'{leaf.path}' must be a boolean")
        row["value_bool"] = value
        return row
    if scim_type in (ScimType.integer, ScimType.decimal):
        row["value_number"] = number_value(leaf.path, value)
        return row
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidValueException(detail=f"'{leaf.path}' must be a {scim_type.value}")
    text = value if isinstance(value, str) else str(value)
    row["value_text"] = text
    row["value_key"] = key_prefix(leaf.info.comparison_key(text))
    if scim_type == ScimType.date_time:
        row["value_time"] = parse_datetime(text)
    return row


def key_prefix(key: str) -> str:
    """What ``value_key`` holds: the comparison key, cut to the column's length.

    Longer values keep their full text in ``value_text``; filters compare the
    prefix first and fall back on the text (see ``filters``).
    """
    return key[:KEY_LENGTH]


def number_value(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueException(detail=f"'{path}' must be a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or abs(number) > _MAX_FLOAT:
        raise InvalidValueException(detail=f"'{path}' is out of the range that can be stored")
    return number


def parse_datetime(text: str) -> datetime | None:
    """A dateTime (RFC 7643 section 2.3.5) as an aware UTC datetime, or None if it is not one."""
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def storable(text: str) -> bool:
    """Whether the database can hold ``text`` (no NUL, no unpaired surrogate).

    A filter value it cannot hold equals nothing stored, and must not reach
    the database as a parameter it would reject.
    """
    return _UNSTORABLE.search(text) is None
