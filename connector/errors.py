"""The connector's refusals: one hierarchy, and one table that says how each is answered.

Services raise these; they carry no HTTP status or exit code of their own.
:data:`ANSWERS` is the one place that decides how each kind is answered on
every surface: a SCIM Error document (RFC 7644 section 3.12: status and
``scimType``), the access API's JSON (status and error code) and the
``hub-scim`` exit status. Anything that is not a :class:`HubError` is a bug:
a logged 500 with no detail, or a traceback-free ``Error:`` line.

The messages are for people (an IT admin, a product engineer): they say
what was refused and why, and point to ``docs/rules.md`` when a product rule
is the reason. The module imports nothing, so the pure rules of
:mod:`connector.access` can raise them too.
"""

from __future__ import annotations

from dataclasses import dataclass


class HubError(Exception):
    """A request the connector refuses on purpose; ``str(error)`` says why."""


class InvalidInput(HubError, ValueError):
    """A value that cannot be used: an unknown product, state, role or permission, a bad URL.

    Also a ``ValueError``, as Python's own parsers answer a value they cannot read.
    """


class NotFound(HubError):
    """No such thing in this organization (another organization's things are not found either)."""


class AlreadyExists(HubError):
    """The name or key is taken in this organization."""


class Refused(HubError):
    """Well-formed, but a product rule forbids it; the message names the rule."""


class Conflict(HubError):
    """It changed since it was read: read again, then retry (a stale mapping preview)."""


class InvalidMapping(InvalidInput):
    """A mapping file refused whole; the message lists every problem at its line."""


@dataclass(frozen=True)
class Answer:
    """How one kind of refusal is answered on each surface."""

    status: int
    scim_type: str | None
    api_error: str
    exit_code: int


ANSWERS: dict[type[HubError], Answer] = {
    InvalidMapping: Answer(400, "invalidValue", "invalid_mapping", 2),
    InvalidInput: Answer(400, "invalidValue", "invalid_request", 2),
    NotFound: Answer(404, None, "not_found", 4),
    AlreadyExists: Answer(409, "uniqueness", "already_exists", 5),
    Refused: Answer(400, "invalidValue", "refused", 6),
    Conflict: Answer(409, None, "conflict", 7),
    HubError: Answer(400, "invalidValue", "invalid_request", 1),
}
"""Refusal kind to its answers; a subclass is answered as its nearest listed ancestor."""


def answer_for(error: HubError) -> Answer:
    """The answer of ``error``'s nearest kind in :data:`ANSWERS`."""
    for kind in type(error).__mro__:
        if kind in ANSWERS:
            return ANSWERS[kind]
    return ANSWERS[HubError]  # pragma: no cover - HubError is in every MRO here
