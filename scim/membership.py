"""Group membership PATCH operations as a member-set delta (RFC 7644 section 3.5.2).

A group PATCH is split in two: the operations on ``members`` are folded, in
request order, into one :class:`~scim.backend.MemberChanges`, and the other
operations (``displayName``, ``externalId``...) are applied by scim2-models
to the group document. The member list is never loaded: a PATCH naming k
members costs O(k) whatever the size of the group.

The forms understood, from RFC 7644 and the IdPs (docs/okta.md, docs/entra.md):

- ``add`` ``members`` with a list of ``{"value": id}``: add those members;
- ``remove`` ``members[value eq "id"]`` (or several ``value eq`` joined by
  ``or``): remove those members;
- ``remove`` ``members`` with a value list (Entra ID): remove those members;
- ``remove`` ``members`` without a value: remove every member;
- ``replace`` ``members`` with a list: the new member set;
- ``add``/``replace`` without a path whose value holds ``members``.

The ``display`` a member carries in an ``add`` or ``replace`` value (RFC 7643
section 4.2: a human-readable label, not read-only) travels with it in the
delta, as it does from a Group's creation and replacement
(:func:`creation_changes`, :func:`replacement_changes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scim2_models import Group, InvalidPathException, InvalidValueException, Path
from scim2_models.path import CompareOperator, Comparison, FilterNode, LogicalExpr, LogicalOperator

from scim.backend import MemberChanges

GROUP_MEMBERS_URN = f"{Group.__schema__}:members".lower()


@dataclass
class MemberDelta:
    """The running result of folding member operations in request order.

    ``display`` holds the labels sent for members of ``add`` (or of
    ``replacement``): a later operation on the same member overrides it, a
    removal forgets it, and an add without a label leaves it as it is.
    """

    add: set[str] = field(default_factory=set)
    remove: set[str] = field(default_factory=set)
    cleared: bool = False
    replacement: set[str] | None = None
    display: dict[str, str] = field(default_factory=dict)

    def add_members(self, labels: Mapping[str, str | None]) -> None:
        ids = set(labels)
        self.display.update(_sent(labels))
        if self.replacement is not None:
            self.replacement |= ids
            return
        self.add |= ids
        self.remove -= ids

    def remove_members(self, ids: Iterable[str]) -> None:
        ids = set(ids)
        for member_id in ids:
            self.display.pop(member_id, None)
        if self.replacement is not None:
            self.replacement -= ids
            return
        self.add -= ids
        if not self.cleared:
            self.remove |= ids

    def remove_all(self) -> None:
        self.replacement = None
        self.cleared = True
        self.add = set()
        self.remove = set()
        self.display = {}

    def replace_members(self, labels: Mapping[str, str | None]) -> None:
        self.replacement = set(labels)
        self.cleared = False
        self.add = set()
        self.remove = set()
        self.display = _sent(labels)

    def changes(self) -> MemberChanges:
        if self.replacement is not None:
            return MemberChanges(replace=frozenset(self.replacement), display=dict(self.display))
        return MemberChanges(
            add=frozenset(self.add),
            remove=frozenset(self.remove),
            remove_all=self.cleared,
            display=dict(self.display),
        )


def _sent(labels: Mapping[str, str | None]) -> dict[str, str]:
    return {member_id: label for member_id, label in labels.items() if label is not None}


def creation_changes(members: Any) -> MemberChanges | None:
    """A new Group's ``members`` (RFC 7644 section 3.3) as a delta adding each, with its label."""
    labels = member_labels(members)
    if not labels:
        return None
    return MemberChanges(add=frozenset(labels), display=_sent(labels))


def replacement_changes(members: Any) -> MemberChanges:
    """A PUT Group's ``members`` (RFC 7644 section 3.5.1) as the new member set, with its labels.

    An absent ``members`` empties the group, as replacing the resource means.
    """
    labels = member_labels(members)
    return MemberChanges(replace=frozenset(labels), display=_sent(labels))


def split_member_operations(
    operations: Sequence[Any],
) -> tuple[list[Any], MemberChanges]:
    """Separate the operations on ``members`` from the others, folded into one delta.

    Works on the operations as parsed from JSON, so that member values never
    go through model validation: Okta sends up to a thousand in one request.
    Operations on other attributes are returned unchanged and in order, for
    scim2-models to validate and apply; a no-path value holding ``members``
    and other attributes contributes to both.
    """
    delta = MemberDelta()
    others: list[Any] = []
    for operation in operations:
        if not isinstance(operation, dict):
            others.append(operation)
            continue
        op = _field(operation, "op")
        op = op.lower() if isinstance(op, str) else op
        raw_path = _field(operation, "path")
        value = _field(operation, "value")
        if raw_path is None or raw_path == "":
            members_key = _members_key(value) if op in ("add", "replace") else None
            if members_key is None:
                others.append(operation)
                continue
            labels = member_labels(value[members_key])
            if op == "replace":
                delta.replace_members(labels)
            else:
                delta.add_members(labels)
            rest = {key: item for key, item in value.items() if key != members_key}
            if {key.lower() for key in rest} - {"schemas"}:
                others.append({**operation, "value": rest})
            continue

        path = _members_path(raw_path)
        if path is None or op not in ("add", "remove", "replace"):
            others.append(operation)
            continue
        value_filter = path.value_filter
        if op == "remove":
            if value_filter is not None:
                delta.remove_members(_filtered_member_ids(value_filter, str(path)))
            elif value is not None:
                delta.remove_members(member_ids(value))
            else:
                delta.remove_all()
        elif value_filter is not None:
            raise InvalidPathException(
                path=str(path), detail="A filtered members path can only be removed"
            )
        elif value is None:
            raise InvalidValueException(detail=f"value is required for {op} operations")
        elif op == "add":
            delta.add_members(member_labels(value))
        else:
            delta.replace_members(member_labels(value))
    return others, delta.changes()


def _field(operation: dict[str, Any], name: str) -> Any:
    for key, item in operation.items():
        if isinstance(key, str) and key.lower() == name:
            return item
    return None


def member_ids(value: Any) -> list[str]:
    """The user ids of a ``members`` value: a list of ``{"value": id}`` (or one such object)."""
    return list(member_labels(value))


def member_labels(value: Any) -> dict[str, str | None]:
    """Each user id of a ``members`` value with the ``display`` sent for it, else None.

    RFC 7643 section 4.2: ``display`` is an optional human-readable string; an
    empty one says no more than an absent one. A member listed twice counts
    once, with the label of its last entry.
    """
    if value is None:
        return {}
    entries = value if isinstance(value, list) else [value]
    labels: dict[str, str | None] = {}
    for entry in entries:
        member_id = entry.get("value") if isinstance(entry, dict) else entry
        if not isinstance(member_id, str) or not member_id:
            raise InvalidValueException(
                detail='Each member must be an object with a non-empty "value"'
            )
        label = entry.get("display") if isinstance(entry, dict) else None
        if label is not None and not isinstance(label, str):
            raise InvalidValueException(
                detail=f'members: the "display" of {member_id!r} must be a string'
            )
        labels[member_id] = label or None
    return labels


def _members_key(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in value:
        if isinstance(key, str) and key.lower() in ("members", GROUP_MEMBERS_URN):
            return key
    return None


def _members_path(raw_path: Any) -> Path[Group] | None:
    """The parsed path when it designates ``members``, else None (left to scim2-models)."""
    if not isinstance(raw_path, str):
        return None
    try:
        path = Path[Group](raw_path)
    except InvalidPathException:
        return None
    if path.model is not None:
        return None
    binding = path.resolve()
    if binding is None or binding.model is not Group or binding.field_name != "members":
        return None
    if binding.sub_field_name is not None:
        raise InvalidPathException(
            path=str(path),
            detail="Member sub-attributes cannot be changed: add or remove the member",
        )
    return path


def _filtered_member_ids(node: FilterNode, path: str) -> list[str]:
    """The ids of ``members[value eq "a" or value eq "b"]``: the one member filter costing O(k)."""
    terms = (
        node.terms if isinstance(node, LogicalExpr) and node.op == LogicalOperator.or_ else (node,)
    )
    ids = []
    for term in terms:
        if not (
            isinstance(term, Comparison)
            and term.op == CompareOperator.eq
            and term.attr_path.attr.lower() == "value"
            and term.attr_path.sub_attr is None
            and isinstance(term.value, str)
        ):
            raise InvalidPathException(
                path=path,
                detail='Members are selected by value only, as in members[value eq "id"]',
            )
        ids.append(term.value)
    return ids
