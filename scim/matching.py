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

from collections.abc import Iterator, Mapping, Sequence
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
    return matching(model_of(compiled), [compiled], document)[0]


def model_of(compiled: ScimFilter[Any]) -> type[Resource[Any]]:
    """The one resource model a filter was bound to."""
    model = compiled.model
    if model is None or not issubclass(model, Resource):
        raise TypeError("a filter bound to one resource model is needed")
    return model


def matching(
    model: type[Resource[Any]], filters: Sequence[ScimFilter[Any]], document: Mapping[str, Any]
) -> tuple[bool, ...]:
    """Whether ``document`` satisfies each of ``filters``, all bound to ``model``.

    The document is read once, and only the top-level attributes the filters
    name (validating a whole User costs far more than matching it): what an
    organization's many rules cost per user.
    """
    wanted = {key for compiled in filters for key in _top_level_keys(model, compiled)}
    trimmed = {key: value for key, value in document.items() if key.lower() in wanted}
    try:
        resource = model.model_validate(trimmed)
    except ValidationError:
        return tuple(False for _ in filters)
    return tuple(compiled.match(resource) for compiled in filters)


def _top_level_keys(model: type[Resource[Any]], compiled: ScimFilter[Any]) -> Iterator[str]:
    """The document keys a filter reads, lower-cased: core attributes, or extension URNs."""
    core = str(model.__schema__ or "").lower()
    for path in attribute_paths(compiled.ast):
        uri = (path.uri or "").lower()
        yield path.attr.lower() if uri in ("", core) else uri
