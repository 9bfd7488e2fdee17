"""What Okta and Microsoft Entra ID send that must be accepted, before scim2-models validates it.

The IdPs deviate from RFC 7643/7644 in ways that are harmless to read but that
a strict validator refuses, and turning such a request into an error would
break provisioning (docs/rules.md#directory-mirrors-the-idp). These functions
take the parsed JSON of a request and return a copy in the strict form. What
scim2-models already tolerates (op names in any case, string booleans,
attribute names in any case, PATCH value keys that are attribute paths,
``Add`` on a filter matching nothing, a ``remove`` whose value lists the
entries) is left to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from scim2_models import InvalidSyntaxException, InvalidValueException

from scim.backend import ResourceKind
from scim.resources import ENTERPRISE_SCHEMA, KNOWN_SCHEMAS

Payload = dict[str, Any]

_SERVER_ASSIGNED = frozenset({"id", "meta"})
"""Read-only attributes a client echoes back from a GET (RFC 7644 section 3.5.1: ignored)."""

_NEVER_WRITTEN_USER_ATTRIBUTES = frozenset({"groups", "password"})
"""User attributes accepted and dropped: ``groups`` is read-only (RFC 7643 section
4.1.2) and Hub never stores a password, not even hashed."""

_MANAGER = f"{ENTERPRISE_SCHEMA}:manager".lower()


def require_object(payload: Any, what: str) -> Payload:
    if not isinstance(payload, dict):
        raise InvalidSyntaxException(detail=f"The {what} must be a JSON object")
    reject_nul_characters(payload)
    return payload


def reject_nul_characters(payload: Any) -> None:
    """Refuse a NUL character anywhere in a document: no database stores one in text."""
    for text in _strings(payload):
        if "\x00" in text:
            raise InvalidValueException(detail="Strings may not contain the NUL character")


def _strings(payload: Any) -> Iterator[str]:
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def body_resource_id(payload: Payload) -> str | None:
    """The ``id`` a resource body carries, if any (attribute names are case-insensitive)."""
    for key, value in payload.items():
        if key.lower() == "id" and isinstance(value, str):
            return value
    return None


def normalize_resource(
    kind: ResourceKind, payload: Payload, known: frozenset[str] | None = None
) -> Payload:
    """A POST or PUT body in the form scim2-models validates (RFC 7644 sections 3.3 and 3.5.1).

    - ``id`` and ``meta`` are dropped: they are read-only and IdPs echo them.
    - A User's ``groups`` (read-only) and ``password`` (never stored) are dropped.
    - Schema URNs this service does not serve (Entra's
      ``http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group``)
      are dropped from ``schemas``, with any attributes filed under them;
      ``known`` are the URNs served (lowercased), by default the core ones.
    - A manager given as a bare id becomes ``{"value": id}``.
    - Role values Entra stringifies as JSON are read back as objects.
    """
    known = KNOWN_SCHEMAS[kind] if known is None else known
    dropped = set(_SERVER_ASSIGNED)
    if kind is ResourceKind.USER:
        dropped |= _NEVER_WRITTEN_USER_ATTRIBUTES
    normalized: Payload = {}
    for key, value in payload.items():
        lowered = key.lower()
        if lowered in dropped:
            continue
        if lowered == "schemas" and isinstance(value, list):
            value = [urn for urn in value if not isinstance(urn, str) or urn.lower() in known]
        elif _is_schema_urn(lowered) and lowered not in known:
            continue
        normalized[key] = value
    if kind is ResourceKind.USER:
        _normalize_user_values(normalized)
    return normalized


def normalize_patch(kind: ResourceKind, payload: Payload) -> Payload:
    """A PatchOp body in the form scim2-models validates (RFC 7644 section 3.5.2).

    - In a value without ``path``, ``id`` and ``meta`` are dropped (Okta sends
      the group's own id in every rename), and so are a User's ``groups`` and
      ``password``.
    - A manager given as a bare id becomes ``{"value": id}``; a manager
      ``remove`` drops its value, and a ``replace`` with an empty one becomes a
      ``remove``.
    - Role values Entra stringifies as JSON are read back as objects.
    """
    normalized = dict(payload)
    for key, operations in payload.items():
        if key.lower() == "operations" and isinstance(operations, list):
            normalized[key] = [
                _normalize_operation(kind, operation) if isinstance(operation, dict) else operation
                for operation in operations
            ]
    return normalized


def _normalize_operation(kind: ResourceKind, operation: Payload) -> Payload:
    normalized = dict(operation)
    op_key = next((k for k in operation if k.lower() == "op"), "op")
    op = operation.get(op_key)
    path_key = next((k for k in operation if k.lower() == "path"), None)
    value_key = next((k for k in operation if k.lower() == "value"), "value")
    path = operation.get(path_key) if path_key else None
    value = operation.get(value_key)
    op_name = op.lower() if isinstance(op, str) else op

    if isinstance(path, str):
        path = path.strip()
        normalized[path_key or "path"] = path
    if path in (None, "") and isinstance(value, dict):
        normalized[value_key] = _normalize_patch_value(kind, value)
        return normalized
    if not isinstance(path, str) or kind is not ResourceKind.USER:
        return normalized

    lowered = path.lower()
    if lowered == _MANAGER:
        if op_name == "remove" or (op_name == "replace" and value in (None, "", {})):
            normalized[op_key] = "remove"
            normalized.pop(value_key, None)
        elif isinstance(value, str):
            normalized[value_key] = {"value": value}
    elif lowered == "roles" and isinstance(value, list):
        normalized[value_key] = [_parse_role(role) for role in value]
    return normalized


def _normalize_patch_value(kind: ResourceKind, value: Payload) -> Payload:
    dropped = set(_SERVER_ASSIGNED)
    if kind is ResourceKind.USER:
        dropped |= _NEVER_WRITTEN_USER_ATTRIBUTES
    normalized = {key: item for key, item in value.items() if key.lower() not in dropped}
    if kind is ResourceKind.USER:
        _normalize_user_values(normalized)
    return normalized


def _normalize_user_values(values: Payload) -> None:
    """Rewrite, in place, the manager and roles spellings of a User document or PATCH value."""
    for key, item in list(values.items()):
        lowered = key.lower()
        if lowered == _MANAGER and isinstance(item, str):
            values[key] = {"value": item}
        elif lowered == ENTERPRISE_SCHEMA.lower() and isinstance(item, dict):
            values[key] = {
                name: {"value": manager}
                if name.lower() == "manager" and isinstance(manager, str)
                else manager
                for name, manager in item.items()
            }
        elif lowered == "roles" and isinstance(item, list):
            values[key] = [_parse_role(role) for role in item]


def _parse_role(role: Any) -> Any:
    """Entra sends app role assignments in a PATCH as ``{"value": "<JSON of the role>"}``."""
    if not isinstance(role, dict):
        return role
    value = role.get("value")
    if not (isinstance(value, str) and value.lstrip().startswith("{")):
        return role
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return role
    if not isinstance(parsed, dict) or not isinstance(parsed.get("value"), str):
        return role
    result: Payload = {k: v for k, v in role.items() if k != "value"}
    result["value"] = parsed["value"]
    display = parsed.get("displayName") or parsed.get("display")
    if isinstance(display, str) and "display" not in result:
        result["display"] = display
    return result


def _is_schema_urn(key: str) -> bool:
    return key.startswith(("urn:", "http://", "https://"))
