"""Filters parsed once per shape: a lookup's tree, with only its string told apart.

Okta and Entra ID send the same filter before nearly every create, each time
with another string: ``userName eq "ada@example.com"`` (RFC 7644 section
3.4.2.2). scim2-models parses and checks a filter in tens of microseconds and
remembers the trees of the texts it has seen, which a new name never is. A
filter whose only string literal comes last is here parsed once per shape
(the text with that string emptied) and the request's string put into the
tree: the tree is the one :class:`~scim2_models.ScimFilter` builds for the
text, and a text it refuses is refused the same way.

That holds because the string is one token of the grammar, whose content
changes neither how the rest is read nor, for an attribute whose values are
plain strings, what the check against the model finds: it neither converts nor
refuses a string compared with such an attribute. Any other filter, and any
attribute of another type, is parsed as it comes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from typing import Any

from scim2_models import Resource, SCIMException, ScimFilter
from scim2_models.path import Comparison, FilterNode

from scim.attributes import resolve_attribute

_LAST_STRING = re.compile(
    # A JSON string, as the filter grammar's STRING token reads it (RFC 7644
    # section 3.4.2.2 refers to RFC 7159), preceded by no other and followed
    # by the whitespace the grammar ignores only.
    r'(?P<head>[^"]*)'
    r'(?P<string>"(?:[^"\\\x00-\x1F]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*")'
    r"(?P<tail>[ \t\f\r\n]*)",
    re.DOTALL,
)


def parse_filter_text(model: type[Resource[Any]], text: str) -> FilterNode:
    """``ScimFilter[model](text).ast``, from a remembered shape when the text has one."""
    match = _LAST_STRING.fullmatch(text)
    if match is not None:
        shape = _comparison_shape(model, match["head"] + '""' + match["tail"])
        if shape is not None:
            return dataclasses.replace(shape, value=json.loads(match["string"]))
    return ScimFilter[model](text).ast  # type: ignore[valid-type]


@functools.lru_cache(maxsize=256)
def _comparison_shape(model: type[Resource[Any]], shape: str) -> Comparison | None:
    """The tree of ``shape``, a comparison with an empty string, if any string may fill it.

    None when the shape is not such a comparison, names an attribute whose
    values are not plain strings (or none the model declares), or is refused:
    the request's own text is then parsed, so that an error names it.
    """
    try:
        node = ScimFilter[model](shape).ast  # type: ignore[valid-type]
    except (SCIMException, ValueError):
        return None
    if not isinstance(node, Comparison) or node.value != "":
        return None
    info = resolve_attribute(model, node.attr_path, for_comparison=True)
    if info is None or info.binding.target_type is not str:
        return None
    return node
