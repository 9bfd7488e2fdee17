"""The hook through which Hub's access engine follows every directory change.

The store calls a :class:`DirectoryListener` inside the transaction of the
SCIM request, right after each change and before the commit, so that derived
access, audit and events commit or roll back with the directory change itself
(DESIGN.md rules 11 and 12). Documents are the SCIM documents as the store
returns them, with ``meta`` but without ``members``/``groups``: membership
changes arrive through :meth:`DirectoryListener.members_changed` and the id
sets of the delete hooks.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

Document = dict[str, Any]


class DirectoryListener(Protocol):
    """Follows changes to one organization's users, groups and memberships."""

    def check_user(self, session: Session, org_id: int, document: Document) -> None:
        """Refuse a user document Hub must not store (DESIGN.md rule 9).

        Called before a user is created or replaced; may raise
        ``scim2_models.InvalidValueException``.
        """
        ...

    def user_written(
        self,
        session: Session,
        org_id: int,
        user_id: str,
        before: Document | None,
        after: Document,
    ) -> None:
        """A user was created (``before`` is None) or replaced."""
        ...

    def user_deleted(
        self, session: Session, org_id: int, user_id: str, before: Document, group_ids: set[str]
    ) -> None:
        """A user was deleted; ``group_ids`` are the groups it was a member of."""
        ...

    def group_written(
        self,
        session: Session,
        org_id: int,
        group_id: str,
        before: Document | None,
        after: Document,
    ) -> None:
        """A group was created (``before`` is None) or its attributes replaced."""
        ...

    def group_deleted(
        self, session: Session, org_id: int, group_id: str, before: Document, member_ids: set[str]
    ) -> None:
        """A group was deleted; ``member_ids`` are the users it held."""
        ...

    def members_changed(
        self, session: Session, org_id: int, group_id: str, added: set[str], removed: set[str]
    ) -> None:
        """Exactly these users joined and left the group (never called with both empty)."""
        ...


class NullListener:
    """The listener of a directory nothing follows."""

    def check_user(self, session: Session, org_id: int, document: Document) -> None:
        return None

    def user_written(
        self,
        session: Session,
        org_id: int,
        user_id: str,
        before: Document | None,
        after: Document,
    ) -> None:
        return None

    def user_deleted(
        self, session: Session, org_id: int, user_id: str, before: Document, group_ids: set[str]
    ) -> None:
        return None

    def group_written(
        self,
        session: Session,
        org_id: int,
        group_id: str,
        before: Document | None,
        after: Document,
    ) -> None:
        return None

    def group_deleted(
        self, session: Session, org_id: int, group_id: str, before: Document, member_ids: set[str]
    ) -> None:
        return None

    def members_changed(
        self, session: Session, org_id: int, group_id: str, added: set[str], removed: set[str]
    ) -> None:
        return None
