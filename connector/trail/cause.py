"""Who and what caused a change, as the audit trail names it (docs/rules.md#audit)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    """``actor`` as the audit trail names it (``scim:<credential id>``, ``cli:ada``,
    ``console:ada``, ``system``) and ``reason``: the request or action that
    caused the change (``PATCH /scim/v2/Groups/1``).

    Every write is given its cause as an argument; nothing reads it from
    ambient state.
    """

    actor: str
    reason: str
