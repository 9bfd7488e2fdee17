"""What a transaction has already read, kept for the rest of that transaction.

One SCIM write asks for the organization's rules more than once: the
client-domain check before the store writes, then the recomputation after.
Reading them once per transaction is enough, because every writer of what
they are read from forgets them (:func:`forget`) in the same transaction.

A value is remembered for the innermost transaction open when it was read: it
stays visible in the savepoints that transaction opens, and is gone once the
transaction ends, whether it committed, rolled back or was a savepoint
released. A value read inside a savepoint therefore never outlives rows that a
rolled-back savepoint took with it, and nothing outlives the request's
transaction, so another transaction's writes are seen on its next read.
"""

from __future__ import annotations

from collections.abc import Hashable

from sqlalchemy.orm import Session, SessionTransaction

_MEMO = "hub.provisioning.memo"


def _innermost(session: Session) -> SessionTransaction | None:
    return session.get_nested_transaction() or session.get_transaction()


def recall(session: Session, key: Hashable) -> object | None:
    """The value remembered under ``key`` in this transaction, or None."""
    memo: dict[Hashable, tuple[SessionTransaction, object]] | None = session.info.get(_MEMO)
    if not memo or key not in memo:
        return None
    owner, value = memo[key]
    current = _innermost(session)
    while current is not None:
        if current is owner:
            return value if owner.is_active else None
        current = current.parent
    del memo[key]
    return None


def remember(session: Session, key: Hashable, value: object) -> None:
    """Keep ``value`` under ``key`` until the current (innermost) transaction ends."""
    current = _innermost(session)
    if current is not None:
        session.info.setdefault(_MEMO, {})[key] = (current, value)


def forget(session: Session, key: Hashable) -> None:
    """Drop ``key``: call it beside every write to what the value was read from."""
    memo = session.info.get(_MEMO)
    if memo:
        memo.pop(key, None)
