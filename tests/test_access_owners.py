"""The two-Owner cap, the hold queue and the last-Owner rule.

docs/rules.md#owner-cap and #last-owner.

Scenarios first (Okta pushing "Hub Owners", Entra disabling an Owner, one
PATCH swapping Owners), then properties over random sequences of directory
changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.access.owners import (
    HeldOwner,
    OwnerEventKind,
    OwnerOutcome,
    OwnerSeats,
    OwnerStanding,
    Seat,
    seat_owners,
)

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def kinds(outcome: OwnerOutcome) -> list[tuple[str, str | None]]:
    return [(event.kind.value, event.user_id) for event in outcome.events]


def seated(ids: list[str], *, kept: str | None = None) -> OwnerSeats:
    return OwnerSeats(
        tuple(
            Seat(number, user, at(number), kept_as_last=user == kept)
            for number, user in enumerate(ids, start=1)
        )
    )


# Scenarios


def test_okta_pushes_three_owners_two_are_seated_one_is_held() -> None:
    outcome = seat_owners(OwnerSeats(), ["ann", "bob", "cat"], now=T0)
    assert outcome.after.owner_ids == ("ann", "bob")
    assert outcome.after.held_ids == ("cat",)
    assert outcome.after.standing("cat") is OwnerStanding.HELD
    assert outcome.after.queue_position("cat") == 1
    assert kinds(outcome) == [
        ("owner_seated", "ann"),
        ("owner_seated", "bob"),
        ("owner_held", "cat"),
    ]


def test_entra_disables_a_seated_owner_and_the_held_one_is_seated() -> None:
    before = seat_owners(OwnerSeats(), ["ann", "bob", "cat"], now=T0).after
    outcome = seat_owners(before, ["bob", "cat"], left=["ann"], now=at(5))
    assert outcome.after.owner_ids == ("cat", "bob")
    assert outcome.after.seats[0] == Seat(1, "cat", at(5))
    assert outcome.after.queue == ()
    assert kinds(outcome) == [
        ("owner_unseated", "ann"),
        ("owner_seat_freed", None),
        ("owner_seated", "cat"),
    ]
    assert outcome.affected_users == {"ann", "cat"}


def test_one_patch_that_removes_owner_a_and_adds_c_seats_c() -> None:
    outcome = seat_owners(seated(["ann", "bob"]), ["bob", "cat"], now=at(5))
    assert set(outcome.after.owner_ids) == {"bob", "cat"}
    assert outcome.after.queue == ()
    assert ("owner_held", "cat") not in kinds(outcome)


def test_one_patch_that_swaps_the_only_owner_seats_the_new_one() -> None:
    outcome = seat_owners(seated(["ann"]), ["cat"], now=at(5))
    assert outcome.after.owner_ids == ("cat",)
    assert OwnerEventKind.KEPT_AS_LAST_OWNER not in {event.kind for event in outcome.events}


def test_a_leaver_always_loses_the_seat_even_the_last_owner() -> None:
    outcome = seat_owners(seated(["ann"]), [], left=["ann"], now=at(5))
    assert outcome.after.seats == ()
    assert not outcome.after.has_owner
    assert kinds(outcome)[-1] == ("org_without_owner", None)
    assert outcome.after.to_json()["without_owner"] is True


def test_the_last_owner_removed_from_the_group_while_active_is_kept_and_flagged() -> None:
    outcome = seat_owners(seated(["ann"]), [], now=at(5))
    assert outcome.after.seats == (Seat(1, "ann", at(1), kept_as_last=True),)
    assert outcome.after.standing("ann") is OwnerStanding.KEPT_AS_LAST
    assert kinds(outcome) == [("owner_kept_as_last", "ann")]
    # Nothing else happening keeps the flag, without a new event.
    assert seat_owners(outcome.after, [], now=at(6)).events == ()


def test_a_kept_last_owner_steps_down_once_another_owner_is_seated() -> None:
    kept = seated(["ann"], kept="ann")
    outcome = seat_owners(kept, ["dan"], now=at(9))
    assert outcome.after.owner_ids == ("dan",)
    assert outcome.after.seats[0].number == 1
    assert kinds(outcome) == [
        ("owner_unseated", "ann"),
        ("owner_seat_freed", None),
        ("owner_seated", "dan"),
    ]


def test_a_kept_last_owner_added_back_to_the_group_is_no_longer_flagged() -> None:
    outcome = seat_owners(seated(["ann"], kept="ann"), ["ann"], now=at(9))
    assert outcome.after.seats == (Seat(1, "ann", at(1)),)
    assert kinds(outcome) == [("owner_last_requalified", "ann")]


def test_a_kept_last_owner_who_leaves_leaves_the_org_without_owner() -> None:
    outcome = seat_owners(seated(["ann"], kept="ann"), [], left=["ann"], now=at(9))
    assert not outcome.after.has_owner
    assert kinds(outcome)[-1] == ("org_without_owner", None)


def test_both_owners_removed_at_once_keeps_the_longest_seated() -> None:
    seats = OwnerSeats((Seat(1, "ann", at(30)), Seat(2, "bob", at(10))))
    outcome = seat_owners(seats, [], now=at(40))
    assert outcome.after.seats == (Seat(2, "bob", at(10), kept_as_last=True),)
    assert ("owner_unseated", "ann") in kinds(outcome)


def test_an_owner_removed_beside_another_is_simply_unseated() -> None:
    outcome = seat_owners(seated(["ann", "bob"]), ["bob"], now=at(5))
    assert outcome.after.owner_ids == ("bob",)
    assert kinds(outcome) == [("owner_unseated", "ann"), ("owner_seat_freed", None)]


def test_the_queue_is_first_come_across_changes() -> None:
    state = seat_owners(OwnerSeats(), ["ann", "bob"], now=at(0)).after
    state = seat_owners(state, ["ann", "bob", "eve"], now=at(1)).after
    state = seat_owners(state, ["ann", "bob", "dan", "eve"], now=at(2)).after
    assert state.queue == (HeldOwner("eve", at(1)), HeldOwner("dan", at(2)))
    # Ann leaves: Eve, held first, is seated before Dan.
    state = seat_owners(state, ["bob", "dan", "eve"], left=["ann"], now=at(3)).after
    assert state.owner_ids == ("eve", "bob")
    assert state.held_ids == ("dan",)


def test_a_held_user_who_is_deactivated_leaves_the_queue_and_rejoins_at_the_back() -> None:
    state = seat_owners(OwnerSeats(), ["ann", "bob", "cat", "dan"], now=at(0)).after
    outcome = seat_owners(state, ["ann", "bob", "dan"], left=["cat"], now=at(1))
    assert kinds(outcome) == [("owner_hold_released", "cat")]
    state = seat_owners(outcome.after, ["ann", "bob", "dan", "cat"], now=at(2)).after
    assert state.held_ids == ("dan", "cat")


def test_a_held_user_removed_from_the_group_is_released() -> None:
    state = seat_owners(OwnerSeats(), ["ann", "bob", "cat"], now=at(0)).after
    outcome = seat_owners(state, ["ann", "bob"], now=at(1))
    assert outcome.after.queue == ()
    assert outcome.events[0].reason == "no longer mapped to Owner"
    assert outcome.affected_users == {"cat"}


def test_a_leaver_listed_as_qualifying_is_still_a_leaver() -> None:
    outcome = seat_owners(seated(["ann"]), ["ann", "bob"], left=["ann"], now=at(1))
    assert outcome.after.owner_ids == ("bob",)


def test_newcomers_in_one_change_are_taken_in_the_order_given() -> None:
    outcome = seat_owners(seated(["ann"]), ["ann", "zed", "bob", "zed"], now=at(1))
    assert outcome.after.owner_ids == ("ann", "zed")
    assert outcome.after.held_ids == ("bob",)


def test_an_unchanged_org_produces_no_events() -> None:
    state = seat_owners(OwnerSeats(), ["ann", "bob", "cat"], now=at(0)).after
    outcome = seat_owners(state, ["ann", "bob", "cat"], now=at(1))
    assert outcome.events == ()
    assert outcome.after == state
    assert outcome.affected_users == frozenset()


def test_an_org_that_never_had_an_owner_is_not_reported_on_every_change() -> None:
    outcome = seat_owners(OwnerSeats(), [], now=at(1))
    assert outcome.events == ()
    assert not outcome.after.has_owner


@pytest.mark.parametrize(
    "seats",
    [
        lambda: OwnerSeats((Seat(3, "ann", T0),)),
        lambda: OwnerSeats((Seat(1, "ann", T0), Seat(1, "bob", T0))),
        lambda: OwnerSeats((Seat(2, "ann", T0), Seat(1, "bob", T0))),
        lambda: OwnerSeats((Seat(1, "ann", T0),), (HeldOwner("ann", T0),)),
    ],
)
def test_an_impossible_state_is_refused(seats: object) -> None:
    assert callable(seats)
    with pytest.raises(ValueError, match="seat"):
        seats()


def test_the_outcome_prints_as_json() -> None:
    outcome = seat_owners(OwnerSeats(), ["ann", "bob", "cat"], now=T0)
    printed = outcome.to_json()
    assert printed["after"]["queue"] == [
        {"user_id": "cat", "since": "2025-01-06T09:00:00+00:00", "position": 1}
    ]
    assert printed["events"][2] == {
        "event": "owner_held",
        "user_id": "cat",
        "seat": None,
        "reason": "would be a third Owner: both seats taken; acts with the fallback role",
    }


# Properties: a directory driven by random changes


@dataclass
class Directory:
    """Users, their active flag and the order they joined the Owners group."""

    active: dict[str, bool] = field(default_factory=dict)
    owners_group: list[str] = field(default_factory=list)
    next_id: int = 0

    def qualifying(self) -> list[str]:
        return [user for user in self.owners_group if self.active[user]]


# Joining is weighted up so that histories often reach three or more would-be Owners.
OPS = ("create", "join", "join", "join", "leave_group", "deactivate", "reactivate", "delete")
Change = list[tuple[str, int]]

changes = st.lists(
    st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 7)), min_size=1, max_size=4),
    min_size=1,
    max_size=25,
)


def apply(directory: Directory, change: Change) -> set[str]:
    """Apply one SCIM request's worth of changes; return who left (deactivated or deleted)."""
    left: set[str] = set()
    users = sorted(directory.active, key=lambda user: int(user[1:]))
    for op, pick in change:
        if op == "create" or not users:
            user = f"u{directory.next_id}"
            directory.next_id += 1
            directory.active[user] = True
            users.append(user)
            continue
        user = users[pick % len(users)]
        if op == "join" and user not in directory.owners_group:
            directory.owners_group.append(user)
        elif op == "leave_group" and user in directory.owners_group:
            directory.owners_group.remove(user)
        elif op == "deactivate" and directory.active[user]:
            directory.active[user] = False
            left.add(user)
        elif op == "reactivate":
            directory.active[user] = True
            left.discard(user)
        elif op == "delete":
            # The same userName may come back later, as a new user with a new id.
            del directory.active[user]
            if user in directory.owners_group:
                directory.owners_group.remove(user)
            users.remove(user)
            left.add(user)
    return left


def run(history: list[Change]) -> list[tuple[OwnerSeats, OwnerOutcome, list[str], set[str]]]:
    directory = Directory()
    state = OwnerSeats()
    steps = []
    for minute, change in enumerate(history):
        left = apply(directory, change)
        qualifying = directory.qualifying()
        outcome = seat_owners(state, qualifying, left, now=at(minute))
        steps.append((state, outcome, qualifying, left))
        state = outcome.after
    return steps


def assert_at_most_two_seats(outcome: OwnerOutcome) -> None:
    assert len(outcome.after.seats) <= 2
    assert len(set(outcome.after.owner_ids)) == len(outcome.after.seats)


def assert_seated_owners_qualify_or_are_the_flagged_last(
    outcome: OwnerOutcome, qualifying: list[str], left: set[str]
) -> None:
    after = outcome.after
    for seat in after.seats:
        assert seat.user_id not in left
        if seat.kept_as_last:
            assert after.seats == (seat,)
            assert not qualifying
        else:
            assert seat.user_id in qualifying


def assert_qualifying_users_are_seated_or_held(
    outcome: OwnerOutcome, qualifying: list[str]
) -> None:
    after = outcome.after
    unflagged = [seat.user_id for seat in after.seats if not seat.kept_as_last]
    assert sorted(unflagged + list(after.held_ids)) == sorted(qualifying)
    if after.queue:
        assert len(unflagged) == 2  # nobody waits while a seat is free
    if qualifying:
        assert after.has_owner


def assert_queue_is_first_come(before: OwnerSeats, outcome: OwnerOutcome) -> None:
    after = outcome.after
    # Those still waiting keep their relative order, ahead of anyone new.
    stayed = [user for user in before.held_ids if user in after.held_ids]
    assert list(after.held_ids[: len(stayed)]) == stayed
    # Seats go from the head: nobody waiting is passed over by someone held after them.
    for user in before.held_ids:
        if user in after.owner_ids:
            ahead = before.held_ids[: before.held_ids.index(user)]
            assert not set(ahead) & set(after.held_ids)
    times = [held.since for held in after.queue]
    assert times == sorted(times)


def assert_every_step_is_an_event(before: OwnerSeats, outcome: OwnerOutcome) -> None:
    seated_events = {e.user_id for e in outcome.events if e.kind is OwnerEventKind.SEATED}
    unseated_events = {e.user_id for e in outcome.events if e.kind is OwnerEventKind.UNSEATED}
    assert seated_events == set(outcome.after.owner_ids) - set(before.owner_ids)
    assert unseated_events == set(before.owner_ids) - set(outcome.after.owner_ids)
    if before.has_owner and not outcome.after.has_owner:
        assert outcome.events[-1].kind is OwnerEventKind.ORG_WITHOUT_OWNER


@settings(max_examples=250, deadline=None)
@given(changes)
def test_no_sequence_of_memberships_deactivations_and_deletions_breaks_the_cap(
    history: list[Change],
) -> None:
    for before, outcome, qualifying, left in run(history):
        assert_at_most_two_seats(outcome)
        assert_seated_owners_qualify_or_are_the_flagged_last(outcome, qualifying, left)
        assert_qualifying_users_are_seated_or_held(outcome, qualifying)
        assert_queue_is_first_come(before, outcome)
        assert_every_step_is_an_event(before, outcome)


@settings(max_examples=100, deadline=None)
@given(changes)
def test_seating_is_deterministic(history: list[Change]) -> None:
    assert [step[1] for step in run(history)] == [step[1] for step in run(history)]
