"""Who and what caused a change, for the audit trail (DESIGN.md rule 11).

The provisioning service never reads Flask: the SCIM application sets the
cause of each directory write (its credential and the request line) with
:func:`set_cause` before the store runs, and the access listener reads it
back with :func:`current_cause`. Command-line and API actions pass their
actor explicitly instead.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    """``actor`` as the audit trail names it (``scim:<credential id>``, ``cli:ada``, ``system``)
    and ``reason``: the request or action that caused the change (``PATCH /scim/v2/Groups/1``).
    """

    actor: str
    reason: str


_CAUSE: contextvars.ContextVar[Cause | None] = contextvars.ContextVar(
    "hub_provisioning_cause", default=None
)


def current_cause(org_id: int) -> Cause:
    """The cause set for this request, else a SCIM write of ``org_id`` of unknown origin."""
    cause = _CAUSE.get()
    if cause is None:
        return Cause(actor=f"scim:org-{org_id}", reason="SCIM request")
    return cause


def set_cause(cause: Cause | None) -> contextvars.Token[Cause | None]:
    """Set the cause for what follows in this context; pass the token to :func:`reset_cause`."""
    return _CAUSE.set(cause)


def reset_cause(token: contextvars.Token[Cause | None]) -> None:
    _CAUSE.reset(token)


@contextmanager
def caused_by(cause: Cause) -> Iterator[Cause]:
    """Run a block with ``cause`` as the cause of every directory change in it."""
    token = _CAUSE.set(cause)
    try:
        yield cause
    finally:
        _CAUSE.reset(token)
