"""The two-Owner cap, its first-come hold queue and the last-Owner rule.

docs/rules.md#owner-cap and #last-owner.

:func:`seat_owners` is one pure state transition: given the seats and queue
before a change, who qualifies as Owner after it (active and mapped to Owner)
and who left in it (deactivated or deleted), it returns the seats and queue
after, and the events to audit. Applied after every change that can alter
who qualifies, it keeps these invariants (tested as properties):

- at most two seats are filled, one user per seat;
- each seated user qualifies, or is the one flagged last Owner, and a flagged
  last Owner is never seated beside anyone else;
- every qualifying user is seated or queued, and nobody waits while a seat is free;
- the queue is first-come: order of arrival, never reordered.

The persistence layer serializes the writes that call it per organization
and stores seats under a key ``(org, seat)`` with ``seat`` in (1, 2), so the
schema itself refuses a third Owner.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

SEAT_NUMBERS = (1, 2)
"""The two Owner seats of an organization (docs/rules.md#owner-cap)."""


@dataclass(frozen=True)
class Seat:
    """An Owner seat: who holds it since when; ``kept_as_last`` flags a kept last Owner."""

    number: int
    user_id: str
    since: datetime
    kept_as_last: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "seat": self.number,
            "user_id": self.user_id,
            "since": self.since.isoformat(),
            "kept_as_last": self.kept_as_last,
        }


@dataclass(frozen=True)
class HeldOwner:
    """A user the mapping would make a third Owner, waiting since ``since``."""

    user_id: str
    since: datetime

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "since": self.since.isoformat()}


class OwnerStanding(enum.Enum):
    """Where one user stands with respect to the Owner seats."""

    NONE = "none"
    SEATED = "seated"
    KEPT_AS_LAST = "kept_as_last"
    HELD = "held"


@dataclass(frozen=True)
class OwnerSeats:
    """An organization's Owner seats (ordered by seat number) and hold queue (first-come)."""

    seats: tuple[Seat, ...] = ()
    queue: tuple[HeldOwner, ...] = ()

    def __post_init__(self) -> None:
        numbers = [seat.number for seat in self.seats]
        users = [seat.user_id for seat in self.seats] + [held.user_id for held in self.queue]
        if any(number not in SEAT_NUMBERS for number in numbers) or len(set(numbers)) != len(
            numbers
        ):
            raise ValueError(f"Owner seats must be distinct numbers in {SEAT_NUMBERS}: {numbers}")
        if len(set(users)) != len(users):
            raise ValueError("a user holds more than one seat or queue place")
        if list(self.seats) != sorted(self.seats, key=lambda seat: seat.number):
            raise ValueError("Owner seats must be ordered by seat number")

    @property
    def owner_ids(self) -> tuple[str, ...]:
        return tuple(seat.user_id for seat in self.seats)

    @property
    def held_ids(self) -> tuple[str, ...]:
        return tuple(held.user_id for held in self.queue)

    @property
    def has_owner(self) -> bool:
        return bool(self.seats)

    def standing(self, user_id: str) -> OwnerStanding:
        for seat in self.seats:
            if seat.user_id == user_id:
                return OwnerStanding.KEPT_AS_LAST if seat.kept_as_last else OwnerStanding.SEATED
        if user_id in self.held_ids:
            return OwnerStanding.HELD
        return OwnerStanding.NONE

    def queue_position(self, user_id: str) -> int | None:
        """1-based place in the hold queue, as the health report shows it."""
        ids = self.held_ids
        return ids.index(user_id) + 1 if user_id in ids else None

    def to_json(self) -> dict[str, Any]:
        return {
            "seats": [seat.to_json() for seat in self.seats],
            "queue": [
                {**held.to_json(), "position": position}
                for position, held in enumerate(self.queue, start=1)
            ],
            "without_owner": not self.has_owner,
        }


class OwnerEventKind(enum.Enum):
    SEATED = "owner_seated"
    HELD = "owner_held"
    UNSEATED = "owner_unseated"
    RELEASED = "owner_hold_released"  # left the queue without a seat
    KEPT_AS_LAST_OWNER = "owner_kept_as_last"
    LAST_OWNER_REQUALIFIED = "owner_last_requalified"
    SEAT_FREED = "owner_seat_freed"
    ORG_WITHOUT_OWNER = "org_without_owner"


@dataclass(frozen=True)
class OwnerEvent:
    """One step of the Owner seating; each is audited (docs/rules.md#owner-cap)."""

    kind: OwnerEventKind
    user_id: str | None
    seat: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind.value,
            "user_id": self.user_id,
            "seat": self.seat,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class OwnerOutcome:
    """The seats and queue after a change, and what happened, in order."""

    before: OwnerSeats
    after: OwnerSeats
    events: tuple[OwnerEvent, ...]

    @property
    def affected_users(self) -> frozenset[str]:
        """Users whose standing changed: their access must be derived again."""
        users = set(self.before.owner_ids) | set(self.before.held_ids)
        users |= set(self.after.owner_ids) | set(self.after.held_ids)
        return frozenset(
            user for user in users if self.before.standing(user) != self.after.standing(user)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "before": self.before.to_json(),
            "after": self.after.to_json(),
            "events": [event.to_json() for event in self.events],
        }


def seat_owners(
    current: OwnerSeats,
    qualifying: Sequence[str],
    left: Iterable[str] = (),
    *,
    now: datetime,
) -> OwnerOutcome:
    """Apply the two-Owner cap after a change (docs/rules.md#owner-cap).

    ``qualifying``: every user of the org who, after the change, is active and
    mapped to Owner, in arrival order (users new to it in this change are
    seated or queued in the order given; pass the order the request named
    them). ``left``: users deactivated or deleted by the change. ``now``: the
    time of the change, recorded on new seats and holds.

    The steps, in order:

    1. A leaver loses the seat or queue place at once, Owner or not
       (docs/rules.md#last-owner).
    2. A seated Owner who no longer qualifies (removed from the Owners group
       while active) is unseated, unless that would leave no Owner: the
       longest-seated such Owner is then kept, flagged, until another Owner
       is seated. A held user who no longer qualifies is released.
    3. Free seats go to the head of the queue, then to newcomers in order;
       one change that removes Owner A and adds C seats C.
    4. Newcomers beyond two seats are held at the back of the queue.
    """
    left_ids = frozenset(left)
    qualifies = [user for user in dict.fromkeys(qualifying) if user not in left_ids]
    qualifying_set = frozenset(qualifies)
    events: list[OwnerEvent] = []

    def emit(kind: OwnerEventKind, user: str | None, seat: int | None, reason: str) -> None:
        events.append(OwnerEvent(kind, user, seat, reason))

    seats: list[Seat] = []
    lapsed: list[Seat] = []  # seated, active, no longer qualifying
    for seat in current.seats:
        if seat.user_id in left_ids:
            emit(OwnerEventKind.UNSEATED, seat.user_id, seat.number, "left: deactivated or deleted")
            emit(OwnerEventKind.SEAT_FREED, None, seat.number, "its Owner left")
        elif seat.user_id in qualifying_set:
            if seat.kept_as_last:
                emit(
                    OwnerEventKind.LAST_OWNER_REQUALIFIED,
                    seat.user_id,
                    seat.number,
                    "mapped to Owner again; no longer flagged",
                )
            seats.append(replace(seat, kept_as_last=False))
        else:
            lapsed.append(seat)

    queue: list[HeldOwner] = []
    for held in current.queue:
        if held.user_id in qualifying_set:
            queue.append(held)
        else:
            reason = (
                "left: deactivated or deleted"
                if held.user_id in left_ids
                else "no longer mapped to Owner"
            )
            emit(OwnerEventKind.RELEASED, held.user_id, None, reason)

    known = {seat.user_id for seat in current.seats} | {held.user_id for held in current.queue}
    newcomers = [user for user in qualifies if user not in known]
    queue.extend(HeldOwner(user, now) for user in newcomers)

    # Seats held by lapsed Owners are free unless one must be kept as the last Owner.
    will_have_owner = bool(seats) or bool(queue)
    kept: Seat | None = None
    if lapsed and not will_have_owner:
        kept = min(lapsed, key=lambda seat: (seat.since, seat.number))
    for seat in lapsed:
        if seat is kept:
            if not seat.kept_as_last:
                emit(
                    OwnerEventKind.KEPT_AS_LAST_OWNER,
                    seat.user_id,
                    seat.number,
                    "removed from Owner mapping while active; kept as the last Owner "
                    "until another Owner is seated",
                )
            seats.append(replace(seat, kept_as_last=True))
        else:
            reason = (
                "another Owner is seated; the last-Owner flag ends"
                if seat.kept_as_last
                else "no longer mapped to Owner"
            )
            emit(OwnerEventKind.UNSEATED, seat.user_id, seat.number, reason)
            emit(OwnerEventKind.SEAT_FREED, None, seat.number, "its Owner was unseated")

    taken = {seat.number for seat in seats}
    free = [number for number in SEAT_NUMBERS if number not in taken]
    while free and queue:
        number = free.pop(0)
        held = queue.pop(0)
        was_held = held.user_id in known
        seats.append(Seat(number, held.user_id, now))
        emit(
            OwnerEventKind.SEATED,
            held.user_id,
            number,
            "head of the hold queue; a seat freed"
            if was_held
            else "mapped to Owner; a seat was free",
        )
    for held in queue:
        if held.user_id not in known:
            emit(
                OwnerEventKind.HELD,
                held.user_id,
                None,
                "would be a third Owner: both seats taken; acts with the fallback role",
            )

    after = OwnerSeats(tuple(sorted(seats, key=lambda seat: seat.number)), tuple(queue))
    if current.has_owner and not after.has_owner:
        emit(OwnerEventKind.ORG_WITHOUT_OWNER, None, None, "the last Owner left")
    return OwnerOutcome(current, after, tuple(events))
