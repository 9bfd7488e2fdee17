"""Erase a former user's personal data from the trail (docs/personal-data.md#erasure).

GDPR article 17 gives a person the right to have their personal data erased.
The directory forgets a user as soon as the IdP deletes them
(docs/rules.md#leavers), but the trail keeps what happened to them: audit
entries with their documents, events naming their userName, provisioning-log
rows with their userName in a filter or an error, console sessions. Erasing
replaces that personal data, in one transaction, with a **pseudonym** that is
the same everywhere for that user (``erased-`` and 16 hex digits of a hash of
the organization and the user's SCIM id, which is itself random), and keeps
what the audit needs: ids, order, times, actions, roles, grants and sources.

- Only a user who has **left the directory** can be erased; a present user
  is refused (:class:`UserStillPresent`): the IdP deletes them first.
- The user is named by their SCIM id or their former userName; a userName
  that several former users had is refused as ambiguous.
- The user's own documents (in ``user.*`` audit entries) keep their shape:
  ``userName`` and ``displayName`` become the pseudonym, every other
  attribute's text (names, emails, phone numbers, addresses, externalId,
  extensions) becomes the pseudonym too; ``id``, ``meta``, ``schemas``,
  ``active``, ``roles``, ``entitlements``, ``groups`` and ``userType`` stay,
  as do the ``type`` labels of multi-valued attributes.
- The user's identifiers (userName, email addresses, externalId, phone
  numbers) are replaced wherever else the organization's trail holds them:
  reasons and actors of audit entries (a grant "to" them, an action "by"
  ``console:<userName>``), event payloads, provisioning-log paths (a filter
  on their userName) and error details, console sessions, and the "by" of
  mappings, manual grants (and the access they derive, which names the
  grantor) and console settings. An identifier that another user also holds
  (one still in the directory, or another former user whose documents the
  trail keeps: the same userName provisioned again) is replaced only in the
  rows about the erased user, and reported (:attr:`ErasureReport.shared`):
  replacing it everywhere would erase the other person too.
- The erase is audited (``user.erased``: who erased, the pseudonym, how many
  rows were rewritten; never the erased data) and announced to products
  (event ``user.erased``) so that they erase their own copies.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from sqlalchemy import ColumnElement, String, Table, cast, false, func, literal, or_, select, update
from sqlalchemy.orm import Session

from connector.db.base import table_of
from connector.derived.facts import user_name_key
from connector.derived.tables import ACCESS_SNAPSHOTS, MANUAL_GRANTS, MAPPINGS
from connector.directory.tables import ATTRIBUTE_VALUES, RESOURCES
from connector.errors import InvalidInput, NotFound, Refused
from connector.tenancy.console import ConsoleLink, ConsoleSession, ConsoleSso
from connector.trail.audit import AUDIT_LOG
from connector.trail.cause import Cause
from connector.trail.events import EVENTS
from connector.trail.journal import Journal
from connector.trail.request_log import SCIM_REQUEST_LOG
from connector.trail.retention import RETENTION_SETTINGS

PSEUDONYM_PREFIX = "erased-"
RULE = "docs/personal-data.md#erasure"

# Attributes of a User document that say what the user could do, not who they are.
KEPT_ATTRIBUTES = frozenset(
    {"schemas", "id", "meta", "active", "roles", "entitlements", "groups", "usertype"}
)
# Sub-attributes kept inside personal attributes: labels, not data.
KEPT_SUB_ATTRIBUTES = frozenset({"type", "primary"})
# An identifier shorter than this is too likely to be part of other words to
# be replaced outside the user's own documents.
MIN_IDENTIFIER_LENGTH = 3

CONSOLE_SESSIONS = table_of(ConsoleSession)
CONSOLE_SSO = table_of(ConsoleSso)
CONSOLE_LINKS = table_of(ConsoleLink)

# Tables that hold text about people, and what erase does with each. Every
# table with a text column is in one of these two lists (a test checks).
REWRITTEN_TABLES = (
    "audit_log",
    "events",
    "scim_request_log",
    "console_sessions",
    "mapping_documents",
    "manual_grants",
    "access_snapshots",
    "console_sso",
    "console_links",
    "retention_settings",
)
UNTOUCHED_TABLES = {
    "organizations": "the organization's name",
    "credentials": "hashes and labels of tokens",
    "scim_resources": "the directory: the erased user is no longer in it",
    "scim_attribute_values": "the directory's index: the erased user is no longer in it",
    "group_members": "the directory's memberships: the user's rows left with the user",
    "group_bindings": "mapping rules bound to groups",
    "product_states": "the organization's products",
    "owner_seats": "ids of seated Owners: the user's seat was freed on delete",
    "owner_holds": "ids of held Owners: the user's place was freed on delete",
    "onboarding_done": "onboarding by id: the user's rows left with the user",
    "event_endpoints": "products' webhook URLs and secrets",
    "event_counters": "event sequence numbers",
    "event_deliveries": "delivery state and transport errors",
    "scim_role_changes": "the first role change per organization: a user id, a kind, a time",
    "scim_extensions": "declared SCIM schema extensions and the command-line login declaring them",
}


class UserStillPresent(Refused):
    """The user is still in the directory: the IdP must delete them before they are erased."""


class FormerUserNotFound(NotFound):
    """No trace of a former user by that id or userName in this organization."""


def pseudonym_of(org_id: int, user_id: str) -> str:
    """The stable pseudonym of one user: derived from ids only, never from personal data."""
    digest = hashlib.sha256(f"hub-scim erase:{org_id}:{user_id}".encode()).hexdigest()
    return PSEUDONYM_PREFIX + digest[:16]


@dataclass
class ErasureReport:
    """What an erase did: the user, their pseudonym, rows rewritten per table."""

    user_id: str
    pseudonym: str
    rewritten: dict[str, int] = field(default_factory=dict)
    shared: list[str] = field(default_factory=list)
    """Kinds of identifier another user also holds: replaced only in the erased user's rows."""

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "pseudonym": self.pseudonym,
            "rewritten": dict(sorted(self.rewritten.items())),
            "shared": self.shared,
        }


# -- the user's personal values ---------------------------------------------------


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _get(document: dict[str, Any], name: str) -> Any:
    for key, value in document.items():
        if key.lower() == name:
            return value
    return None


def _identifiers(document: Any) -> dict[str, str]:
    """The identifiers a User document (or a diff of one) carries, by kind, keyed by value."""
    found: dict[str, str] = {}
    if not isinstance(document, dict):
        return found

    def note(kind: str, value: Any) -> None:
        if isinstance(value, str) and value.strip():
            found.setdefault(value, kind)

    note("userName", _get(document, "username"))
    note("externalId", _get(document, "externalid"))
    for attribute, kind in (("emails", "email"), ("phonenumbers", "phone number")):
        values = _get(document, attribute)
        for item in values if isinstance(values, list) else []:
            if isinstance(item, dict):
                note(kind, _get(item, "value"))
    return found


def pseudonymized_document(document: Any, pseudonym: str) -> Any:
    """A User document, or a diff of one, with every personal value replaced by ``pseudonym``."""
    if not isinstance(document, dict):
        return document
    return {
        key: value if key.lower() in KEPT_ATTRIBUTES else _every_text(value, pseudonym)
        for key, value in document.items()
    }


def _every_text(value: Any, pseudonym: str) -> Any:
    if isinstance(value, str):
        return pseudonym
    if isinstance(value, list):
        return [_every_text(item, pseudonym) for item in value]
    if isinstance(value, dict):
        return {
            key: item if key.lower() in KEPT_SUB_ATTRIBUTES else _every_text(item, pseudonym)
            for key, item in value.items()
        }
    return value


# -- replacing identifiers in text --------------------------------------------------


class _Replacer:
    """Replaces whole occurrences of identifiers, case-insensitively, by the pseudonym."""

    def __init__(self, identifiers: Iterable[str], pseudonym: str) -> None:
        self.pseudonym = pseudonym
        usable = sorted(
            {_fold(value) for value in identifiers if len(value) >= MIN_IDENTIFIER_LENGTH},
            key=len,
            reverse=True,
        )
        self.folded = usable
        # Not inside a longer address or word: "ada@x.example" is not replaced in
        # "bada@x.example" nor in "ada@x.example.org".
        self.pattern = (
            re.compile(
                r"(?<![\w.%+\-])(?:"
                + "|".join(re.escape(value) for value in usable)
                + r")(?![\w%+\-]|\.\w)",
                re.IGNORECASE,
            )
            if usable
            else None
        )

    def text(self, value: str) -> str:
        if self.pattern is None:
            return value
        normalized = unicodedata.normalize("NFC", value)
        replaced = self.pattern.sub(self.pseudonym, normalized)
        return value if replaced == normalized else replaced

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {key: self.json(item) for key, item in value.items()}
        return value

    def path(self, value: str) -> str:
        """A request target: identifiers in its query's values, however they were encoded."""
        base, mark, query = value.partition("?")
        if not mark:
            return self.text(value)
        parts = []
        for part in query.split("&"):
            name, equals, raw = part.partition("=")
            for decode in (unquote_plus, unquote):
                decoded = decode(raw)
                replaced = self.text(decoded)
                if replaced != decoded:
                    raw = quote(replaced, safe="")
                    break
            parts.append(name + equals + raw)
        return base + mark + "&".join(parts)

    def patterns(self) -> list[str]:
        """LIKE patterns (lower case) that every row holding an identifier matches, at least."""
        forms: set[str] = set()
        for value in self.folded:
            forms.update(
                {
                    value,
                    json.dumps(value)[1:-1],
                    quote(value, safe=""),
                    quote_plus(value, safe=""),
                    quote(value, safe="@"),
                    quote_plus(value, safe="@"),
                }
            )
        return sorted("%" + _like_escape(form.lower()) + "%" for form in forms)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _mentions(columns: Iterable[ColumnElement[Any]], patterns: list[str]) -> ColumnElement[bool]:
    """SQL: any of ``columns``, as lower-case text, matches any of ``patterns``."""
    conditions = [
        func.lower(cast(column, String())).like(literal(pattern), escape="\\")
        for column in columns
        for pattern in patterns
    ]
    return or_(*conditions) if conditions else false()


# -- the erase --------------------------------------------------------------------


def _is_present(session: Session, org_id: int, user_ref: str) -> str | None:
    """The id of the user in the directory whom ``user_ref`` names (id or userName), if any."""
    return session.scalar(
        select(RESOURCES.c.id).where(
            RESOURCES.c.org_id == org_id,
            RESOURCES.c.kind == "User",
            or_(
                RESOURCES.c.id == user_ref,
                RESOURCES.c.name_key == user_name_key(user_ref),
            ),
        )
    )


def _former_user_id(session: Session, org_id: int, user_ref: str) -> str:
    """The SCIM id of the former user ``user_ref`` names: their id, or their former userName."""
    about = session.scalar(
        select(AUDIT_LOG.c.id)
        .where(AUDIT_LOG.c.org_id == org_id, AUDIT_LOG.c.target == f"user:{user_ref}")
        .limit(1)
    ) or session.scalar(
        # An event's subject is a user id, or a product (product.*) or the
        # organization ("org:<id>") for events about no user.
        select(EVENTS.c.id)
        .where(
            EVENTS.c.org_id == org_id,
            EVENTS.c.subject == user_ref,
            ~EVENTS.c.type.startswith("product."),
            ~EVENTS.c.subject.startswith("org:"),
        )
        .limit(1)
    )
    if about is not None:
        return user_ref
    wanted = _fold(user_ref)
    replacer = _Replacer([user_ref], "")
    rows = session.execute(
        select(AUDIT_LOG.c.target, AUDIT_LOG.c.before, AUDIT_LOG.c.after).where(
            AUDIT_LOG.c.org_id == org_id,
            AUDIT_LOG.c.action.in_(("user.created", "user.replaced", "user.deleted")),
            _mentions((AUDIT_LOG.c.before, AUDIT_LOG.c.after), replacer.patterns()),
        )
    )
    found = set()
    for target, before, after in rows:
        for document in (before, after):
            name = _get(document, "username") if isinstance(document, dict) else None
            if isinstance(name, str) and _fold(name) == wanted:
                found.add(str(target).removeprefix("user:"))
    if not found:
        raise FormerUserNotFound(
            f"no former user {user_ref!r} in this organization's trail "
            f"(name them by SCIM id or former userName; see {RULE})"
        )
    if len(found) > 1:
        raise InvalidInput(
            f"several former users had the userName {user_ref!r}: "
            f"{', '.join(sorted(found))}; name one by its SCIM id"
        )
    return found.pop()


def _collect_identifiers(session: Session, org_id: int, user_id: str) -> dict[str, str]:
    """Every identifier of the user the trail holds (value -> kind)."""
    found: dict[str, str] = {}
    for before, after in session.execute(
        select(AUDIT_LOG.c.before, AUDIT_LOG.c.after).where(
            AUDIT_LOG.c.org_id == org_id,
            AUDIT_LOG.c.target == f"user:{user_id}",
            AUDIT_LOG.c.action.like("user.%"),
        )
    ):
        for document in (before, after):
            for value, kind in _identifiers(document).items():
                found.setdefault(value, kind)
    for payload in session.scalars(
        select(EVENTS.c.payload).where(EVENTS.c.org_id == org_id, EVENTS.c.subject == user_id)
    ):
        name = payload.get("userName") if isinstance(payload, dict) else None
        if isinstance(name, str) and name:
            found.setdefault(name, "userName")
    for name in session.scalars(
        select(CONSOLE_SESSIONS.c.user_name).where(
            CONSOLE_SESSIONS.c.org_id == org_id, CONSOLE_SESSIONS.c.user_id == user_id
        )
    ):
        found.setdefault(name, "userName")
    return found


def _held_by_present_users(session: Session, org_id: int, values: Iterable[str]) -> set[str]:
    """The values among ``values`` that a user still in the directory holds."""
    folded = {_fold(value): value for value in values}
    keys = list({value.lower() for value in folded.values()} | set(folded))
    if not keys:
        return set()
    held: set[str] = set()
    held.update(
        session.scalars(
            select(RESOURCES.c.name_key).where(
                RESOURCES.c.org_id == org_id,
                RESOURCES.c.kind == "User",
                RESOURCES.c.name_key.in_(keys),
            )
        )
    )
    held.update(
        value.lower()
        for value in session.scalars(
            select(RESOURCES.c.external_id).where(
                RESOURCES.c.org_id == org_id,
                RESOURCES.c.kind == "User",
                RESOURCES.c.external_id.in_(list(folded.values())),
            )
        )
        if value
    )
    held.update(
        value
        for value in session.scalars(
            select(ATTRIBUTE_VALUES.c.value_key).where(
                ATTRIBUTE_VALUES.c.org_id == org_id,
                ATTRIBUTE_VALUES.c.path.in_(("emails.value", "phonenumbers.value")),
                ATTRIBUTE_VALUES.c.value_key.in_(keys),
            )
        )
        if value
    )
    held_folded = {_fold(value) for value in held}
    return {original for key, original in folded.items() if key in held_folded}


def _held_by_former_users(
    session: Session, org_id: int, user_id: str, values: Iterable[str]
) -> set[str]:
    """The values among ``values`` that another former user's documents in the trail hold."""
    wanted = {_fold(value): value for value in values}
    if not wanted:
        return set()
    rows = session.execute(
        select(AUDIT_LOG.c.before, AUDIT_LOG.c.after).where(
            AUDIT_LOG.c.org_id == org_id,
            AUDIT_LOG.c.action.in_(("user.created", "user.replaced", "user.deleted")),
            AUDIT_LOG.c.target != f"user:{user_id}",
            _mentions(
                (AUDIT_LOG.c.before, AUDIT_LOG.c.after), _Replacer(wanted.values(), "").patterns()
            ),
        )
    )
    held: set[str] = set()
    for before, after in rows:
        for document in (before, after):
            held.update(
                wanted[_fold(value)] for value in _identifiers(document) if _fold(value) in wanted
            )
    return held


RowRewrite = Callable[[dict[str, Any], bool], dict[str, Any]]


def _rewrite_table(
    session: Session,
    table: Table,
    org_id: int,
    columns: tuple[str, ...],
    own: ColumnElement[bool] | None,
    everywhere: _Replacer,
    rewrite: RowRewrite,
) -> int:
    """Rewrite the organization's rows of ``table`` that are about the user or mention them."""
    key = list(table.primary_key.columns)
    mentions = _mentions((table.c[name] for name in columns), everywhere.patterns())
    is_own = own if own is not None else false()
    rows = session.execute(
        select(*key, *(table.c[name] for name in columns), is_own.label("own")).where(
            table.c.org_id == org_id, or_(is_own, mentions)
        )
    ).all()
    changed = 0
    for row in rows:
        values = {name: getattr(row, name) for name in columns}
        new = rewrite(values, bool(row.own))
        difference = {name: value for name, value in new.items() if value != values[name]}
        if difference:
            session.execute(
                update(table)
                .where(*(column == getattr(row, column.name) for column in key))
                .values(**difference)
            )
            changed += 1
    return changed


def erase_user(session: Session, org_id: int, user_ref: str, *, actor: str) -> ErasureReport:
    """Replace a former user's personal data in the trail by their pseudonym (module docstring).

    Runs in the caller's transaction, which the caller commits: all of it or nothing.
    """
    present = _is_present(session, org_id, user_ref)
    if present is not None:
        raise UserStillPresent(
            f"user {user_ref!r} is still in the directory (id {present}): only a user the "
            f"identity provider has deleted can be erased; delete them there first ({RULE})"
        )
    user_id = _former_user_id(session, org_id, user_ref)
    pseudonym = pseudonym_of(org_id, user_id)
    identifiers = _collect_identifiers(session, org_id, user_id)
    shared = _held_by_present_users(session, org_id, identifiers) | _held_by_former_users(
        session, org_id, user_id, identifiers
    )
    own_replacer = _Replacer(identifiers, pseudonym)
    everywhere = _Replacer([value for value in identifiers if value not in shared], pseudonym)
    report = ErasureReport(user_id, pseudonym, shared=sorted({identifiers[v] for v in shared}))

    def replacer(own: bool) -> _Replacer:
        return own_replacer if own else everywhere

    def audit_row(values: dict[str, Any], own: bool) -> dict[str, Any]:
        text = replacer(own)
        before, after = values["before"], values["after"]
        if own and str(values["action"]).startswith("user."):
            before = pseudonymized_document(before, pseudonym)
            after = pseudonymized_document(after, pseudonym)
        return {
            "action": values["action"],
            "actor": text.text(values["actor"]),
            "target": text.text(values["target"]),
            "reason": text.text(values["reason"]),
            "before": text.json(before),
            "after": text.json(after),
        }

    def event_row(values: dict[str, Any], own: bool) -> dict[str, Any]:
        payload = replacer(own).json(values["payload"])
        if own and isinstance(payload, dict) and isinstance(payload.get("userName"), str):
            payload = {**payload, "userName": pseudonym}
        return {"subject": replacer(own).text(values["subject"]), "payload": payload}

    def request_row(values: dict[str, Any], own: bool) -> dict[str, Any]:
        text = replacer(own)
        return {
            "path": text.path(values["path"]),
            "detail": None if values["detail"] is None else text.text(values["detail"]),
        }

    def session_row(values: dict[str, Any], own: bool) -> dict[str, Any]:
        text = replacer(own)
        return {
            "user_name": pseudonym if own else text.text(values["user_name"]),
            "end_reason": None if values["end_reason"] is None else text.text(values["end_reason"]),
        }

    def json_row(column: str) -> RowRewrite:
        return lambda values, own: {column: replacer(own).json(values[column])}

    def actor_row(column: str) -> RowRewrite:
        return lambda values, own: {column: replacer(own).text(values[column])}

    plans: list[tuple[Table, tuple[str, ...], ColumnElement[bool] | None, RowRewrite]] = [
        (
            AUDIT_LOG,
            ("action", "actor", "target", "reason", "before", "after"),
            AUDIT_LOG.c.target == f"user:{user_id}",
            audit_row,
        ),
        (EVENTS, ("subject", "payload"), EVENTS.c.subject == user_id, event_row),
        (
            SCIM_REQUEST_LOG,
            ("path", "detail"),
            SCIM_REQUEST_LOG.c.resource_id == user_id,
            request_row,
        ),
        (
            CONSOLE_SESSIONS,
            ("user_name", "end_reason"),
            CONSOLE_SESSIONS.c.user_id == user_id,
            session_row,
        ),
        (MAPPINGS, ("applied_by",), None, actor_row("applied_by")),
        (MANUAL_GRANTS, ("granted_by",), None, actor_row("granted_by")),
        (ACCESS_SNAPSHOTS, ("access",), None, json_row("access")),
        (CONSOLE_SSO, ("updated_by",), None, actor_row("updated_by")),
        (CONSOLE_LINKS, ("created_by",), None, actor_row("created_by")),
        (RETENTION_SETTINGS, ("updated_by",), None, actor_row("updated_by")),
    ]
    for table, columns, own, rewrite in plans:
        changed = _rewrite_table(session, table, org_id, columns, own, everywhere, rewrite)
        if changed:
            report.rewritten[table.name] = changed
    journal = Journal()
    cause = Cause(actor, f"personal data erased on request ({RULE})")
    journal.audit(cause, "user.erased", f"user:{user_id}", None, report.to_json())
    journal.announce("user.erased", user_id, {"user_id": user_id, "userName": pseudonym})
    journal.write(session, org_id)
    return report


__all__ = [
    "REWRITTEN_TABLES",
    "UNTOUCHED_TABLES",
    "ErasureReport",
    "FormerUserNotFound",
    "UserStillPresent",
    "erase_user",
    "pseudonym_of",
    "pseudonymized_document",
]
