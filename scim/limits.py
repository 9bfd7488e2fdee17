"""Bounds on the work one SCIM request may cause (RFC 7644 section 3.12, "tooMany").

Each bound is a plain function the protocol layer calls once, at the point
where the request's size becomes known:

- :func:`check_json_depth`: a body nested deeper than any SCIM document is
  refused before a recursive reader walks it;
- :func:`check_multi_valued`: a resource carrying more entries in a capped
  multi-valued attribute (``emails``, ``roles``...) than the advertised limit is
  refused, on POST, PUT and as the result of a PATCH; a group's ``members`` is
  not capped;
- :func:`check_patch_work`: the operations of one PATCH, weighed by the
  entries their filtered paths walk, stay within a budget
  (:func:`check_patch_size` refuses more operations than the budget before
  any is validated);
- :func:`count_value_path_comparisons`: comparisons inside ``attr[...]``
  filters, which cost per index row, have a lower cap than the rest;
- :class:`Deadline`: the time the request may still run, checked between
  steps; past it the request answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from scim2_models import (
    InvalidSyntaxException,
    InvalidValueException,
    SCIMException,
    TooManyException,
)
from scim2_models.path import FilterNode, LogicalExpr, Not, ValuePath

from scim.settings import ScimSettings

CAPPED_MULTI_VALUED = (
    "emails",
    "phoneNumbers",
    "addresses",
    "ims",
    "photos",
    "entitlements",
    "roles",
    "x509Certificates",
)
"""The multi-valued attributes of a User (RFC 7643 section 4.1.2) whose length is capped."""

MAX_JSON_DEPTH = 32
"""Deepest nesting of objects and arrays in a request body. A Bulk request, the
deepest SCIM document (operation, resource, extension, complex value), nests 7."""

_CAPPED = {name.lower(): name for name in CAPPED_MULTI_VALUED}


def check_json_depth(value: Any, max_depth: int) -> None:
    """Refuse a JSON value nested more than ``max_depth`` containers deep: 400 ``invalidSyntax``.

    Walked without recursion, so that the check itself cannot overflow the stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise InvalidSyntaxException(
                detail=f"The body nests more than {max_depth} levels of objects or arrays"
            )
        stack.extend((child, depth + 1) for child in children)


def check_multi_valued(document: Mapping[str, Any], max_values: int) -> None:
    """Refuse a resource with more than ``max_values`` entries in a capped attribute.

    Answers 400 ``invalidValue`` naming the attribute and the limit, which
    ``/ServiceProviderConfig`` does not have a field for and ``docs/`` states.
    """
    for key, value in document.items():
        name = _CAPPED.get(key.lower())
        if name is not None and isinstance(value, list) and len(value) > max_values:
            raise InvalidValueException(
                detail=f"{name} holds {len(value)} values; at most {max_values} are accepted"
            )


def patch_work(operations: Iterable[Any] | None, document: Mapping[str, Any]) -> int:
    """The work of a PATCH: one unit per operation, plus the entries each filtered path walks.

    A path such as ``emails[value eq "a@example.com"].display`` evaluates its
    filter against every entry of ``emails``; without a filter an operation
    touches its attribute once.
    """
    sizes = {key.lower(): len(value) for key, value in document.items() if isinstance(value, list)}
    work = 0
    for operation in operations or ():
        work += 1
        path = _operation_path(operation)
        if path is None or "[" not in path:
            continue
        attribute = path.split("[", 1)[0].rsplit(":", 1)[-1].lower()
        work += sizes.get(attribute, 0)
    return work


def check_patch_work(
    operations: Iterable[Any] | None, document: Mapping[str, Any], settings: ScimSettings
) -> None:
    """Refuse a PATCH whose :func:`patch_work` exceeds the budget: 400 ``tooMany``.

    The request's deadline is checked too: this runs before each attempt.
    """
    Deadline.check()
    max_work = settings.max_patch_work
    work = patch_work(operations, document)
    if work > max_work:
        raise TooManyException(
            detail=f"This PATCH would evaluate {work} operation-entry pairs, more than the "
            f"{max_work} one request may; send its operations in several requests"
        )


def check_patch_size(operations: Sized, settings: ScimSettings) -> None:
    """Refuse, before validating any, more operations than the PATCH work budget.

    Each operation is at least one unit of :func:`patch_work`, so such a PATCH
    would be refused by :func:`check_patch_work` whatever the resource holds;
    validating its thousands of operations first (about 0.1 ms each) would
    only spend a second of CPU on an answer known in advance.
    """
    max_work = settings.max_patch_work
    if len(operations) > max_work:
        raise TooManyException(
            detail=f"This PATCH would evaluate at least {len(operations)} operation-entry "
            f"pairs, more than the {max_work} one request may; send its operations in "
            "several requests"
        )


def _operation_path(operation: Any) -> str | None:
    """The path of a parsed operation (scim2-models) or of a raw JSON one."""
    if isinstance(operation, dict):
        raw = next((v for k, v in operation.items() if str(k).lower() == "path"), None)
        return raw if isinstance(raw, str) else None
    path = getattr(operation, "path", None)
    return None if path is None else str(path)


def count_value_path_comparisons(node: FilterNode, inside: bool = False) -> int:
    """How many comparisons of a filter sit inside value paths (``emails[type eq "work"]``)."""
    if isinstance(node, LogicalExpr):
        return sum(count_value_path_comparisons(term, inside) for term in node.terms)
    if isinstance(node, Not):
        return count_value_path_comparisons(node.expr, inside)
    if isinstance(node, ValuePath):
        return count_value_path_comparisons(node.val_filter, True)
    return 1 if inside else 0


class DeadlineExceededException(SCIMException):
    """The request ran past its deadline and was stopped; nothing was written: retry it.

    RFC 7644 section 3.12 allows any HTTP status; 503 with ``Retry-After``
    is what Okta and Entra ID retry later.
    """

    status = 503
    _default_detail = "The request ran past its time limit; nothing was changed. Retry shortly."


_DEADLINE: ContextVar[float | None] = ContextVar("scim_request_deadline", default=None)


class Deadline:
    """The monotonic time by which the current request must be done, per thread of execution."""

    @staticmethod
    @contextmanager
    def running(seconds: float) -> Iterator[None]:
        """Give the code run inside ``seconds`` from now."""
        token = _DEADLINE.set(time.monotonic() + seconds)
        try:
            yield
        finally:
            _DEADLINE.reset(token)

    @staticmethod
    def start(seconds: float) -> object:
        """Start a deadline ``seconds`` from now; pass the result to :meth:`stop`."""
        return _DEADLINE.set(time.monotonic() + seconds)

    @staticmethod
    def stop(token: object) -> None:
        _DEADLINE.reset(token)  # type: ignore[arg-type]

    @staticmethod
    def remaining() -> float | None:
        """Seconds left, or None when no deadline runs."""
        deadline = _DEADLINE.get()
        return None if deadline is None else deadline - time.monotonic()

    @staticmethod
    def passed() -> bool:
        deadline = _DEADLINE.get()
        return deadline is not None and time.monotonic() > deadline

    @staticmethod
    def check() -> None:
        """Stop the request if its deadline has passed."""
        if Deadline.passed():
            raise DeadlineExceededException()
