"""SCIM filters evaluated against one resource document, in memory (RFC 7644 section 3.4.2.2).

A list or search request compiles its filter to the store's query language
(:mod:`scim.query` hands the tree on); a caller that holds one document and
asks "does it match?" uses these instead. Both read the filter with
scim2-models, and evaluation is scim2-models' own ``ScimFilter.match``, so the
two agree on case-insensitivity, multi-valued attributes and value paths.

Unlike a request's filter, a filter compiled here is checked strictly: an
attribute the model does not declare is an error, not a comparison that is
always false (RFC 7644 section 3.4.2.1 applies to queries over several
resource types, not to a filter written once and kept).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError
from scim2_models import InvalidFilterException, Resource, ScimFilter, SearchRequest
from scim2_models.path import (
    AttrPath,
    Comparison,
    FilterNode,
    LogicalExpr,
    Not,
    Present,
    ValuePath,
)


def compile_filter(model: type[Resource[Any]], text: str) -> ScimFilter[Any]:
    """Parse ``text`` and bind it to ``model``; raise ``InvalidFilterException`` saying why.

    Every attribute must be one ``model`` declares (core or extension), every
    operator and value one its type accepts.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidFilterException(detail="a filter must be a non-empty string")
    try:
        request = SearchRequest[model].model_validate({"filter": text})  # type: ignore[valid-type]
    except ValidationError as exc:
        details = "; ".join(str(error.get("msg", "")) for error in exc.errors())
        raise InvalidFilterException(detail=details or "invalid filter") from None
    compiled = request.filter
    assert compiled is not None
    return compiled


def attribute_paths(node: FilterNode) -> Iterator[AttrPath]:
    """Every attribute path a filter names at its top level (value paths by their attribute)."""
    if isinstance(node, LogicalExpr):
        for term in node.terms:
            yield from attribute_paths(term)
    elif isinstance(node, Not):
        yield from attribute_paths(node.expr)
    elif isinstance(node, ValuePath | Comparison | Present):
        yield node.attr_path


def document_matches(compiled: ScimFilter[Any], document: Mapping[str, Any]) -> bool:
    """Whether a stored resource document satisfies ``compiled`` (bound by :func:`compile_filter`).

    A document its model cannot read matches nothing.
    """
    model = compiled.model
    if model is None:
        raise TypeError("document_matches needs a filter bound to one model")
    try:
        resource = model.model_validate(dict(document))
    except ValidationError:
        return False
    return compiled.match(resource)
