"""Who may sign in to an organization's console: an active, provisioned staff user of it.

The ID token's ``email`` (else ``preferred_username``) is matched
case-insensitively against the userName or a primary email of a user the
organization's IdP provisioned (docs/rules.md#roles-and-permission-matrix).
A client-domain address is never staff (docs/rules.md#client-identities).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.access.roles import Role
from connector.derived.facts import attribute, is_active, load_rules
from connector.derived.queries import current_access
from connector.directory.tables import ScimAttributeValue, ScimResource
from scim.backend import ResourceKind


@dataclass(frozen=True)
class StaffUser:
    user_id: str
    user_name: str
    role: Role


class SignInRefused(Exception):
    """The person may not use this organization's console; the message says why."""


def claimed_login(claims: Mapping[str, Any]) -> str:
    """Who the ID token says signed in: a verified ``email``, else ``preferred_username``.

    OpenID Connect Core 5.1. An ``email`` counts only when the provider
    vouches for it (``email_verified`` true): an address a person can set on
    their own profile must never open another staff member's console. Okta
    sends ``email_verified``; without it, as on Entra ID, the
    ``preferred_username`` (Okta's login, Entra's user principal name, which
    both IdPs provision as the SCIM userName by default) names the person.
    """
    email = claims.get("email")
    if claims.get("email_verified") is True and isinstance(email, str) and email.strip():
        return email.strip()
    name = claims.get("preferred_username")
    if isinstance(name, str) and name.strip():
        return name.strip()
    raise SignInRefused(
        "the identity provider sent neither a verified email nor a preferred_username"
    )


def _primary_email_matches(document: Mapping[str, Any], wanted: str) -> bool:
    emails = attribute(document, "emails") or []
    for email in emails if isinstance(emails, list) else []:
        if not isinstance(email, Mapping):
            continue
        value = email.get("value")
        primary = email.get("primary")
        if isinstance(value, str) and value.lower() == wanted and primary in (True, "true", "True"):
            return True
    return False


def find_staff_user(session: Session, org_id: int, login: str) -> StaffUser:
    """The active staff user ``login`` names in ``org_id``; raises :class:`SignInRefused`."""
    wanted = login.strip().lower()
    rules = load_rules(session, org_id)
    domain = wanted.rpartition("@")[2]
    if "@" in wanted and domain in {d.lower() for d in rules.config.client_domains}:
        raise SignInRefused(
            f"{login} is an address of a client domain ({domain}): clients use the Portal, "
            "not the IT console"
        )
    scope = (ScimResource.org_id == org_id, ScimResource.kind == ResourceKind.USER.value)
    row = session.execute(
        select(ScimResource.id, ScimResource.name, ScimResource.document).where(
            ScimResource.name_key == wanted, *scope
        )
    ).first()
    if row is None:
        by_email = select(ScimAttributeValue.resource_id).where(
            ScimAttributeValue.org_id == org_id,
            ScimAttributeValue.path == "emails.value",
            ScimAttributeValue.value_key == wanted,
        )
        candidates = session.execute(
            select(ScimResource.id, ScimResource.name, ScimResource.document).where(
                ScimResource.id.in_(by_email), *scope
            )
        ).all()
        matching = [c for c in candidates if _primary_email_matches(c.document, wanted)]
        if len(matching) != 1:
            raise SignInRefused(
                f"{login} is not a user provisioned to this organization by its identity provider"
                if not matching
                else f"{login} is the primary email of several users: sign in with a userName"
            )
        row = matching[0]
    if not is_active(row.document):
        raise SignInRefused(f"{row.name} is deactivated in this organization's identity provider")
    role = current_access(session, org_id, row.id).role
    if role is None:
        raise SignInRefused(f"{row.name} has no Hub role in this organization")
    return StaffUser(row.id, row.name, role)


def current_role(session: Session, org_id: int, user_id: str) -> Role | None:
    """The user's role now, or None when deleted, deactivated or of another organization."""
    document = session.scalar(
        select(ScimResource.document).where(
            ScimResource.id == user_id,
            ScimResource.org_id == org_id,
            ScimResource.kind == ResourceKind.USER.value,
        )
    )
    if document is None or not is_active(document):
        return None
    return current_access(session, org_id, user_id).role
