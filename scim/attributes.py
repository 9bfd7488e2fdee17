"""What a SCIM attribute path designates, read off scim2-models' resource models.

A storage that indexes documents and compiles filters needs, for each
attribute a filter or a ``sortBy`` may name, its canonical spelling, its SCIM
type, whether it is case-exact and whether it holds several values
(RFC 7643 section 2, section 7). None of this is written down here: it is
derived from the field annotations of the models (``CaseExact``,
``Mutability``, ``Returned``, the Python type hints), through scim2-models'
own path resolution, so that an attribute the models learn is known here too.

The canonical path is lower-cased (attribute names are case-insensitive,
RFC 7643 section 2.1): ``username``, ``name.givenname``, ``emails.value``,
``meta.created``. An extension attribute keeps its schema URN, also
lower-cased: ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department``.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from scim2_models import (
    Attribute,
    AttributeBinding,
    BaseModel,
    Extension,
    InvalidPathException,
    Mutability,
    Path,
    Resource,
    Returned,
)
from scim2_models.path import AttrPath

ScimType = Attribute.Type
"""The SCIM data types of RFC 7643 section 2.3 (string, boolean, decimal, ...)."""

_ALWAYS_CASE_EXACT = frozenset({ScimType.reference, ScimType.binary})


@dataclass(frozen=True)
class AttributeInfo:
    """One attribute of a resource type, as a filter, a sort or an index sees it."""

    path: str
    """Canonical lower-cased path, schema URN kept for extension attributes only."""

    type: Attribute.Type
    """SCIM data type of the designated attribute (RFC 7643 section 2.3)."""

    case_exact: bool
    """Whether string values compare with their case (RFC 7643 section 2.2).

    ``reference`` and ``binary`` values are case-exact whatever the schema says
    (RFC 7643 sections 2.3.6 and 2.3.7).
    """

    multi_valued: bool
    """Whether the designated attribute itself holds several values (``emails``, ``schemas``)."""

    in_multi_valued: bool
    """Whether it is a sub-attribute of a multi-valued complex attribute (``emails.type``).

    Each value then belongs to one element of the parent, which a value path
    such as ``emails[type eq "work" and value co "@x"]`` must keep together.
    """

    parent: str | None
    """Canonical path of the complex attribute holding this sub-attribute, if any."""

    sub_attributes: tuple[str, ...]
    """Canonical paths of the sub-attributes of a complex attribute, else empty."""

    mutability: Mutability
    returned: Returned
    binding: AttributeBinding
    """scim2-models' own resolution, for what the fields above do not say."""

    @property
    def is_complex(self) -> bool:
        return self.type == ScimType.complex

    @property
    def is_plural(self) -> bool:
        """Whether a resource may hold several values under this path."""
        return self.multi_valued or self.in_multi_valued

    @property
    def name(self) -> str:
        """The last segment of the canonical path (``value`` for ``emails.value``)."""
        head = self.path.rsplit(":", 1)[-1]
        return head.rsplit(".", 1)[-1]

    def comparison_key(self, value: str) -> str:
        """The form string values are compared in (RFC 7644 section 3.4.2.2).

        NFC-normalized, and lower-cased unless the attribute is case-exact: the
        same key scim2-models' in-memory filter evaluation uses, so a store that
        keeps it compares exactly as ``ScimFilter.match`` does.
        """
        if self.case_exact:
            return unicodedata.normalize("NFC", value)
        key = self.binding.comparable(value)
        return key if isinstance(key, str) else value


@dataclass(frozen=True)
class LeafValue:
    """One scalar value of a document, where it sits and what attribute it is."""

    path: str
    element: int
    """Position in the multi-valued attribute holding it; 0 for single values."""
    value: Any
    info: AttributeInfo


def resolve_attribute(
    model: type[Resource[Any]], path: AttrPath | str, *, for_comparison: bool = False
) -> AttributeInfo | None:
    """The attribute ``path`` designates on ``model`` (RFC 7644 section 3.10), or None.

    ``path`` is case-insensitive and may carry a schema URN. None answers an
    unknown attribute, a path that is not in attribute notation, or a bare
    schema URN. With ``for_comparison``, a multi-valued complex attribute that
    has a ``value`` sub-attribute designates it, as ``emails co "x"`` compares
    ``emails.value`` (RFC 7644 section 3.4.2.2, RFC 7643 section 2.4).
    """
    text = str(path)
    return _resolve_cached(model, text.lower(), for_comparison)


def resolve_sub_attribute(
    model: type[Resource[Any]], parent: AttributeInfo, path: AttrPath
) -> AttributeInfo | None:
    """The attribute an inner path of a value filter designates (RFC 7644 section 3.4.2.2).

    In ``emails[type eq "work"]``, ``type`` designates ``emails.type``. A path
    inside the brackets names a sub-attribute only: a URN or a second level
    designates nothing. Over a multi-valued attribute of simple values
    (``schemas``), ``value`` designates the values themselves.
    """
    if path.uri is not None or path.sub_attr is not None:
        return None
    if not parent.is_complex:
        return parent if path.attr.lower() == "value" else None
    if parent.in_multi_valued or parent.parent is not None:
        return None
    return _resolve_cached(model, f"{parent.path}.{path.attr}".lower(), False)


@functools.cache
def _resolve_cached(
    model: type[Resource[Any]], text: str, for_comparison: bool
) -> AttributeInfo | None:
    try:
        path = Path(text)
        if not isinstance(path.ast, AttrPath):
            return None  # a value selection or a comparison, not attribute notation
        binding = path.resolve(model)
    except (InvalidPathException, ValueError):
        return None
    if binding is None:
        return None
    if for_comparison and binding.sub_field_name is None and binding.is_multivalued:
        value_binding = _value_sub_attribute(model, binding)
        if value_binding is not None:
            binding = value_binding
    return _describe(model, binding)


def _value_sub_attribute(
    model: type[Resource[Any]], binding: AttributeBinding
) -> AttributeBinding | None:
    field_type = binding.field_type
    if not (isinstance(field_type, type) and issubclass(field_type, BaseModel)):
        return None
    try:
        return Path(f"{binding.urn}.value").resolve(model)
    except (InvalidPathException, ValueError):
        return None


def _canonical_path(model: type[Resource[Any]], binding: AttributeBinding) -> str:
    schema = model.__schema__ or ""
    urn = binding.urn
    if issubclass(binding.model, Extension) or not urn.lower().startswith(schema.lower() + ":"):
        return urn.lower()
    return urn[len(schema) + 1 :].lower()


def _describe(model: type[Resource[Any]], binding: AttributeBinding) -> AttributeInfo:
    sub = binding.sub_field_name
    holder: type[BaseModel] | None = binding.target_model
    raw_type = binding.sub_field_type if sub else binding.field_type
    scim_type = ScimType.from_python(raw_type) if raw_type is not None else ScimType.string
    path = _canonical_path(model, binding)
    mutability = Mutability.read_write
    returned = Returned.default
    if holder is not None:
        mutability = holder.get_field_annotation(binding.target_field_name, Mutability)
        returned = holder.get_field_annotation(binding.target_field_name, Returned)
    if sub is not None:
        parent_mutability = binding.model.get_field_annotation(binding.field_name, Mutability)
        if parent_mutability != Mutability.read_write:
            mutability = parent_mutability
    sub_attributes: tuple[str, ...] = ()
    if scim_type == ScimType.complex and isinstance(raw_type, type):
        sub_attributes = tuple(f"{path}.{name.lower()}" for name in _scim_names(raw_type))
    return AttributeInfo(
        path=path,
        type=scim_type,
        case_exact=binding.case_exact or scim_type in _ALWAYS_CASE_EXACT,
        multi_valued=bool(binding.target_is_multivalued),
        in_multi_valued=sub is not None and binding.is_multivalued,
        parent=path.rsplit(".", 1)[0] if sub is not None else None,
        sub_attributes=sub_attributes,
        mutability=mutability,
        returned=returned,
        binding=binding,
    )


def _scim_names(model: type[BaseModel]) -> list[str]:
    """The wire names of a complex attribute's sub-attributes (``$ref`` included)."""
    return [field.serialization_alias or _camel(name) for name, field in model.model_fields.items()]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def iter_leaf_values(
    model: type[Resource[Any]], document: Mapping[str, Any]
) -> Iterator[LeafValue]:
    """Every scalar value of a SCIM document, with its canonical path and element.

    Walks the core attributes and the extension objects (RFC 7643 section 3)
    of ``document``. Keys the model does not declare are skipped, as are
    null values and empty complex values; each value of a multi-valued
    attribute (or each element of a multi-valued complex attribute) gets its
    position as ``element`` (RFC 7643 section 2.4).
    """
    extensions = {schema.lower(): schema for schema in model.get_extension_models()}
    for key, value in document.items():
        schema = extensions.get(key.lower())
        if schema is not None:
            if isinstance(value, Mapping):
                for ext_key, ext_value in value.items():
                    yield from _leaves(model, f"{schema}:{ext_key}", ext_value)
            continue
        yield from _leaves(model, key, value)


def _leaves(model: type[Resource[Any]], key: str, value: Any) -> Iterator[LeafValue]:
    if value is None:
        return
    info = resolve_attribute(model, key)
    if info is None:
        return
    if info.is_complex:
        items = value if info.multi_valued and isinstance(value, list) else [value]
        for element, item in enumerate(items):
            if not isinstance(item, Mapping):
                continue
            for sub_key, sub_value in item.items():
                sub_info = resolve_attribute(model, f"{key}.{sub_key}")
                if sub_info is None or sub_value is None:
                    continue
                if isinstance(sub_value, list):
                    continue  # RFC 7643 section 2.3.8: sub-attributes are never multi-valued
                yield LeafValue(sub_info.path, element, sub_value, sub_info)
        return
    if info.multi_valued and isinstance(value, list):
        for element, item in enumerate(value):
            if item is not None and not isinstance(item, Mapping | list):
                yield LeafValue(info.path, element, item, info)
        return
    if not isinstance(value, Mapping | list):
        yield LeafValue(info.path, 0, value, info)
