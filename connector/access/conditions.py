"""Conditions of mapping rules: a SCIM filter over the user's own attributes.

docs/rules.md#mapping-rules. A rule may match users by what their profile
says rather than by group::

    [[rules]]
    when = 'userType eq "Contractor"'
    role = "viewer"

The condition is written in the SCIM filter grammar (RFC 7644 section
3.4.2.2) and read against the organization's User schema (core, enterprise
extension and any extension the organization declared), strictly: an
attribute the schema does not declare is refused when the mapping is applied,
not silently false. Evaluation is :func:`scim.matching.document_matches`, the
same reading of the grammar as GET /Users?filter=.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scim.matching import attribute_paths, compile_filter, document_matches, matching
from scim2_models import InvalidFilterException, Resource, ScimFilter

_NOT_IN_THE_PROFILE = frozenset({"groups"})
"""User attributes a condition may not name: memberships are matched by group rules."""


class ConditionError(ValueError):
    """A condition that is not a valid filter over the organization's User schema."""


@dataclass(frozen=True)
class Condition:
    """A rule's ``when``: its text as IT wrote it, and the filter bound to the User schema."""

    text: str
    compiled: ScimFilter[Any] = field(compare=False, repr=False)
    model: type[Resource[Any]] = field(compare=False, repr=False)

    def holds_for(self, document: Mapping[str, Any]) -> bool:
        return document_matches(self.compiled, document)


def parse_condition(text: str, user_model: type[Resource[Any]]) -> Condition:
    """Compile ``text`` against ``user_model``; raise :class:`ConditionError` saying why."""
    try:
        compiled = compile_filter(user_model, text)
    except InvalidFilterException as error:
        detail = error.detail
        raise ConditionError(f"is not a valid SCIM filter over the User schema: {detail}") from None
    for path in attribute_paths(compiled.ast):
        if path.uri is None and path.attr.lower() in _NOT_IN_THE_PROFILE:
            raise ConditionError(
                f"cannot test {path.attr!r}: group membership is matched by a group rule"
            )
    return Condition(text, compiled, user_model)


def satisfied(
    conditions: Iterable[tuple[int, Condition]], document: Mapping[str, Any]
) -> frozenset[int]:
    """The numbers of the rules whose condition ``document`` satisfies (read once per model)."""
    by_model: dict[type[Resource[Any]], list[tuple[int, Condition]]] = {}
    for number, condition in conditions:
        by_model.setdefault(condition.model, []).append((number, condition))
    found: set[int] = set()
    for model, items in by_model.items():
        verdicts = matching(model, [condition.compiled for _, condition in items], document)
        found.update(number for (number, _), holds in zip(items, verdicts, strict=True) if holds)
    return frozenset(found)
