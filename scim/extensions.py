"""The schemas served to one tenant: the core resources and the User extensions it declared.

RFC 7643 section 3.3 lets a service provider extend a resource with schema
extensions, each named by its URN and listed under ``schemaExtensions`` of
the resource type (section 6). Entra ID and Okta send custom ones (Entra:
``urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User``).
A service provider hosting several tenants may serve each its own: a
:class:`ServedSchemas` is what one request is validated, stored, filtered,
patched and discovered with. Without declarations it is :data:`DEFAULT_SCHEMAS`.

A declared extension is a Schema resource (RFC 7643 section 7) whose
attributes are simple: ``string``, ``boolean``, ``integer``, ``decimal``,
``dateTime`` or ``reference``, single- or multi-valued. scim2-models turns
it into a model (``Extension.from_schema``), so validation, PATCH paths and
filters treat it exactly as the enterprise extension.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from pydantic import ConfigDict, ValidationError
from scim2_models import (
    ComplexAttribute,
    Extension,
    Group,
    InvalidValueException,
    Resource,
    Schema,
)
from scim2_models import User as _User

from scim.backend import ResourceKind
from scim.resources import KNOWN_SCHEMAS, MODELS, Email, EnterpriseUser

DECLARABLE_TYPES = ("string", "boolean", "integer", "decimal", "dateTime", "reference")
"""The attribute types a declared extension may use (RFC 7643 section 2.3)."""

_SERVED_URNS = frozenset(urn for urns in KNOWN_SCHEMAS.values() for urn in urns)

# An extension becomes an attribute of the User model named after the schema:
# it may not shadow one the model has (``emails``, ``Emails``, ``EnterpriseUser``).
_TAKEN_NAMES = frozenset(
    name.lower() for name in (*dir(MODELS[ResourceKind.USER]), EnterpriseUser.__name__, "User")
)


@dataclass(frozen=True, eq=False)
class ServedSchemas:
    """The models a tenant's requests are read with, and the extension schemas it declared."""

    models: Mapping[ResourceKind, type[Resource[Any]]]
    user_extensions: tuple[Schema, ...] = ()
    _known: Mapping[ResourceKind, frozenset[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        known = {
            kind: frozenset(
                {str(model.__schema__).lower(), *(urn.lower() for urn in _extensions_of(model))}
            )
            for kind, model in self.models.items()
        }
        object.__setattr__(self, "_known", known)

    def model(self, kind: ResourceKind) -> type[Resource[Any]]:
        return self.models[kind]

    def known_schemas(self, kind: ResourceKind) -> frozenset[str]:
        """The schema URNs, lowercased, a resource of ``kind`` may carry."""
        return self._known[kind]


def _extensions_of(model: type[Resource[Any]]) -> Iterable[str]:
    return model.get_extension_models().keys()


DEFAULT_SCHEMAS = ServedSchemas(MODELS)
"""Users with the enterprise extension, and Groups: what a tenant without declarations gets."""


def parse_extension_schema(document: Any) -> Schema:
    """A declared User extension read and checked; ``InvalidValueException`` says what is wrong.

    The URN must be new (not a core schema nor the enterprise extension) and
    every attribute simple, of :data:`DECLARABLE_TYPES`.
    """
    if not isinstance(document, Mapping):
        raise InvalidValueException(detail="an extension schema must be a JSON object")
    try:
        schema = Schema.model_validate(dict(document))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidValueException(detail=f"not a SCIM schema: {problems}") from None
    urn = str(schema.id or "")
    if not urn.lower().startswith("urn:"):
        raise InvalidValueException(detail=f"the schema id {urn!r} must be a URN")
    if urn.lower() in _SERVED_URNS:
        raise InvalidValueException(detail=f"{urn} is served already and cannot be declared")
    if not schema.name or not schema.name.isidentifier():
        raise InvalidValueException(
            detail=f"{urn} needs a name of a single word (letters, digits, _), not {schema.name!r}"
        )
    if schema.name.lower() in _TAKEN_NAMES:
        raise InvalidValueException(
            detail=f"{urn} cannot be named {schema.name!r}: the User resource has that name"
        )
    if not schema.attributes:
        raise InvalidValueException(detail=f"{urn} declares no attribute")
    names: set[str] = set()
    for attribute in schema.attributes:
        name = str(attribute.name or "")
        kind = None if attribute.type is None else attribute.type.value
        if kind not in DECLARABLE_TYPES:
            raise InvalidValueException(
                detail=f"attribute {name!r} has type {kind!r}; "
                f"a declared extension takes {', '.join(DECLARABLE_TYPES)}"
            )
        if name.lower() in names:
            raise InvalidValueException(detail=f"attribute {name!r} is declared twice")
        names.add(name.lower())
    try:
        Extension.from_schema(schema)
    except (TypeError, ValueError) as exc:
        raise InvalidValueException(detail=f"{urn} cannot be served: {exc}") from None
    return schema


def served_schemas(documents: Iterable[Mapping[str, Any]]) -> ServedSchemas:
    """The schemas served with these declared User extensions (documents as declared).

    Models are built once per distinct set of declarations and shared.
    """
    key = tuple(sorted(json.dumps(document, sort_keys=True) for document in documents))
    if not key:
        return DEFAULT_SCHEMAS
    return _served(key)


@functools.lru_cache(maxsize=512)
def _served(key: tuple[str, ...]) -> ServedSchemas:
    schemas = tuple(parse_extension_schema(json.loads(text)) for text in key)
    extensions = tuple(_extension_model(schema) for schema in schemas)
    names = [extension.__name__ for extension in extensions]
    if len(set(names)) != len(names) or EnterpriseUser.__name__ in names:
        raise InvalidValueException(detail=f"two extensions share a name among {names}")
    return ServedSchemas(
        {ResourceKind.USER: _user_model(extensions), ResourceKind.GROUP: Group},
        schemas,
    )


def _extension_model(schema: Schema) -> type[Extension]:
    """The model of a declared extension; a ``decimal`` must be a finite number.

    Pydantic reads ``"NaN"`` and ``"1e400"`` as floats that JSON cannot carry:
    they would be stored and answered as ``null``, so they are refused instead.
    """
    model = Extension.from_schema(schema)
    attributes = {
        "model_config": ConfigDict(allow_inf_nan=False),
        "__module__": model.__module__,
        "__doc__": model.__doc__,
    }
    return type(model.__name__, (model,), attributes)


def _user_model(extensions: tuple[type[Extension], ...]) -> type[Resource[Any]]:
    """The User model of :mod:`scim.resources` with more extensions beside the enterprise one."""
    base: Any = _User[Union[(EnterpriseUser, *extensions)]]  # type: ignore[valid-type]

    class User(base):  # type: ignore[misc]
        """User Account"""

        emails: list[Email] | None = None
        """Email addresses for the user."""

        Emails: ClassVar[type[ComplexAttribute]] = Email

    return User
