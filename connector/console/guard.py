"""The role matrix on every console route: allowed, or 403 with the rule's reason, audited.

Routes declare the :class:`~connector.access.roles.ItAction` they need with
:func:`requires`; the check runs on the server for every request, whatever
the page showed. A refusal changes nothing, answers 403 with the rule of the
matrix (docs/rules.md#roles-and-permission-matrix) and is itself audited.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import g, render_template, request
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from connector.access.roles import PERMISSION_MATRIX, ItAction, Role, may
from connector.admin.auditing import audit_action
from connector.console.sessions import Principal

P = ParamSpec("P")
R = TypeVar("R")


def principal() -> Principal:
    """The person signed in to this request (set before any guarded view runs)."""
    found: Principal = g.console_principal
    return found


def console_db() -> Session:
    db: Session = g.console_db
    return db


def refusal_reason(role: Role, action: ItAction) -> str:
    """Why ``role`` may not take ``action``: the matrix row, in words."""
    allowed = sorted((r for r in Role if action in PERMISSION_MATRIX[r]), reverse=True)
    who = " and ".join(f"{r.title}s" for r in allowed) or "nobody"
    return (
        f"{role.title} may not {action.title.lower()}: only {who} may "
        "(docs/rules.md#roles-and-permission-matrix)"
    )


def refuse(action: ItAction, reason: str) -> Response:
    """Audit the refusal in a transaction of its own and answer 403 with the reason."""
    who = principal()
    db = console_db()
    db.rollback()
    audit_action(
        db,
        who.org_id,
        actor=who.actor,
        action="console.refused",
        target=f"console:{action.value}",
        after={"method": request.method, "path": request.path, "role": who.role.value},
        reason=reason,
    )
    db.commit()
    body = render_template("refused.html", reason=reason, action=action)
    return Response(body, status=403, mimetype="text/html")


def allowed(action: ItAction | str) -> bool:
    """Whether the signed-in person may take ``action`` (for showing a button or a link)."""
    who: Principal | None = g.get("console_principal")
    return who is not None and may(
        who.role, ItAction.parse(action) if isinstance(action, str) else action
    )


def requires(action: ItAction) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """Let the view run only for a role the matrix allows ``action``; otherwise :func:`refuse`."""

    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            who = principal()
            if not may(who.role, action):
                return refuse(action, refusal_reason(who.role, action))
            return view(*args, **kwargs)

        guarded.console_action = action  # type: ignore[attr-defined]
        return guarded

    return decorate


def view_action(view: Any) -> ItAction | None:
    """The action a view requires, for the route table the tests walk."""
    action: ItAction | None = getattr(view, "console_action", None)
    return action
