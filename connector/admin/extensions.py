"""IT declares the custom User schema extensions its IdP sends (RFC 7643 sections 3.3 and 7).

Entra ID and Okta may send attributes under an extension URN of their own,
such as ``urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User``.
Until the organization declares it, such an extension is dropped from a POST
or PUT body and a PATCH path naming it is refused (``invalidPath``). Once
declared, it is served to that organization only: published in ``/Schemas``
and under the User resource type's ``schemaExtensions``, stored, filterable,
patchable, and usable in mapping conditions.

A declaration may add attributes to an extension declared before; it may
not remove one or change one's type or plurality, since users already store
values of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scim2_models import InvalidValueException, Schema
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.db.base import utcnow
from connector.derived.facts import forget_rules
from connector.derived.locks import lock_rules_exclusive
from connector.directory.extensions import extension_documents
from connector.directory.tables import ScimExtension
from connector.errors import InvalidInput
from connector.tenancy.tables import Organization
from connector.trail.cause import Cause
from connector.trail.journal import Journal
from scim.extensions import parse_extension_schema, served_schemas

EXTENSION_DECLARED = "extension.declared"

MAX_URN_LENGTH: int = ScimExtension.__table__.c.urn_key.type.length  # type: ignore[attr-defined]
"""The longest extension URN the table keeps."""


@dataclass(frozen=True)
class DeclaredExtension:
    """One declared extension, as ``hub-scim extension list`` shows it."""

    urn: str
    name: str
    attributes: tuple[tuple[str, str, bool], ...]  # name, type, multi-valued
    declared_by: str
    declared_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "name": self.name,
            "attributes": [
                {"name": name, "type": kind, "multiValued": multi}
                for name, kind, multi in self.attributes
            ],
            "declared_by": self.declared_by,
            "declared_at": self.declared_at.isoformat(timespec="seconds"),
        }


def read_schema_file(text: str, source: str = "schema") -> Any:
    """A schema file's JSON, or :class:`InvalidInput` naming where it stops parsing."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{source}:{error.lineno}: not JSON: {error.msg}") from None


def declare_extension(
    session: Session, org_id: int, document: Any, *, actor: str
) -> DeclaredExtension:
    """Declare (or extend) a User schema extension for the organization, audited.

    Takes the organization's rules exclusively: the mapping's conditions are
    read against the schema, and the models every instance caches are keyed
    by the version this bumps.
    """
    schema = _parse(document)
    urn = str(schema.id)
    if len(urn) > MAX_URN_LENGTH:
        raise InvalidInput(f"refused extension schema: its id is over {MAX_URN_LENGTH} characters")
    lock_rules_exclusive(session, org_id)
    row = session.get(ScimExtension, (org_id, urn.lower()))
    before = None
    if row is not None:
        before = row.document
        _check_compatible(Schema.model_validate(row.document), schema)
    declared = schema.model_dump()
    declared.pop("meta", None)
    others = [doc for doc in extension_documents(session, org_id) if _urn(doc) != urn.lower()]
    try:
        served_schemas([*others, declared])
    except InvalidValueException as error:
        raise InvalidInput(f"{urn}: {error.detail}") from None
    now = utcnow()
    if row is None:
        row = ScimExtension(
            org_id=org_id, urn_key=urn.lower(), document=declared, declared_by=actor
        )
        session.add(row)
    row.document = declared
    row.declared_by = actor
    row.declared_at = now
    session.execute(
        update(Organization)
        .where(Organization.id == org_id)
        .values(schema_version=Organization.schema_version + 1)
    )
    forget_rules(session, org_id)
    journal = Journal()
    journal.audit(
        Cause(actor, f"extension declared ({urn})"),
        EXTENSION_DECLARED,
        f"schema:{urn}",
        before,
        declared,
    )
    journal.write(session, org_id)
    session.flush()
    return _summary(row)


def list_extensions(session: Session, org_id: int) -> list[DeclaredExtension]:
    """The organization's declared extensions, by URN."""
    rows = session.scalars(
        select(ScimExtension).where(ScimExtension.org_id == org_id).order_by(ScimExtension.urn_key)
    )
    return [_summary(row) for row in rows]


def _parse(document: Any) -> Schema:
    try:
        return parse_extension_schema(document)
    except InvalidValueException as error:
        raise InvalidInput(f"refused extension schema: {error.detail}") from None


def _urn(document: dict[str, Any]) -> str:
    return str(document.get("id", "")).lower()


def _check_compatible(old: Schema, new: Schema) -> None:
    """Attributes may be added; none removed, retyped or made single/multi-valued."""
    wanted = {str(attribute.name).lower(): attribute for attribute in new.attributes or []}
    for attribute in old.attributes or []:
        name = str(attribute.name)
        found = wanted.get(name.lower())
        if found is None:
            raise InvalidInput(
                f"{old.id}: attribute {name!r} was declared and users may hold values of it; "
                "it cannot be removed"
            )
        if (found.type, bool(found.multi_valued)) != (attribute.type, bool(attribute.multi_valued)):
            raise InvalidInput(f"{old.id}: attribute {name!r} cannot change its type or plurality")


def _summary(row: ScimExtension) -> DeclaredExtension:
    schema = Schema.model_validate(row.document)
    return DeclaredExtension(
        urn=str(schema.id),
        name=str(schema.name),
        attributes=tuple(
            (
                str(attribute.name),
                "" if attribute.type is None else attribute.type.value,
                bool(attribute.multi_valued),
            )
            for attribute in schema.attributes or []
        ),
        declared_by=row.declared_by,
        declared_at=row.declared_at,
    )
