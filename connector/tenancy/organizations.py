"""Organizations (tenants) and the first-start bootstrap of ``hub-scim serve``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.errors import AlreadyExists, InvalidInput, NotFound
from connector.tenancy.credentials import Scope, create_credential
from connector.tenancy.tables import Organization

DEFAULT_ORGANIZATION = "default"


class OrganizationNotFoundError(NotFound):
    """No organization has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no organization named {name!r}")
        self.name = name


class OrganizationExistsError(AlreadyExists):
    """An organization of this name already exists."""

    def __init__(self, name: str) -> None:
        super().__init__(f"an organization named {name!r} already exists")
        self.name = name


def create_organization(session: Session, name: str) -> Organization:
    """Add an organization; its name must be new and not blank."""
    name = name.strip()
    if not name:
        raise InvalidInput("an organization needs a name")
    if session.scalars(select(Organization.id).where(Organization.name == name)).first():
        raise OrganizationExistsError(name)
    organization = Organization(name=name)
    session.add(organization)
    session.flush()
    return organization


def get_organization(session: Session, name: str) -> Organization:
    """The organization called ``name``, or :class:`OrganizationNotFoundError`."""
    organization = session.scalars(
        select(Organization).where(Organization.name == name)
    ).one_or_none()
    if organization is None:
        raise OrganizationNotFoundError(name)
    return organization


def list_organizations(session: Session) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.name)))


@dataclass(frozen=True)
class Bootstrap:
    """What a first start created: shown once, for pasting into the IdP."""

    organization: str
    credential_id: str
    token: str


def bootstrap_first_start(session: Session, ttl: timedelta | None = None) -> Bootstrap | None:
    """On an empty database, create the ``default`` organization and a SCIM token; commit.

    Returns None when any organization exists already, including when another
    instance starting at the same moment created ``default`` first.
    """
    if session.scalar(select(func.count()).select_from(Organization)):
        return None
    try:
        organization = create_organization(session, DEFAULT_ORGANIZATION)
        credential_id, token = create_credential(
            session, organization.id, Scope.SCIM, label="created on first start", ttl=ttl
        )
        session.commit()
    except (IntegrityError, OrganizationExistsError):
        session.rollback()
        return None
    return Bootstrap(DEFAULT_ORGANIZATION, credential_id, token)
