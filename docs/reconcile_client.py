"""A Hub product's replica of every user's access: a snapshot, then the events after it.

The protocol of docs/reconciliation.md, as a product would write it, with
``requests``. The tests run this very file's :class:`Replica` against the
service while an IdP writes (tests/test_access_snapshot.py).

    python docs/reconcile_client.py --url http://127.0.0.1:8000 --token "$ACCESS_TOKEN"
    python docs/reconcile_client.py ... --follow 5    # then poll events every 5 s

It keeps, per user id, the user's effective access exactly as
``access.changed`` events carry it (``data.access``) and the snapshot rows
repeat it (``access``). A user it does not hold has no access.
"""

from __future__ import annotations

import argparse
import bisect
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

Get = Callable[[str, dict[str, Any]], Any]
"""GET a path under ``/api/v1`` with query parameters; answers the JSON body."""

REPLICA_EVENTS = ("access.changed", "user.deleted")
"""The events that change the replica: the user's full access after a change, a deletion."""


EVENT_PAGE = 1000
"""Events asked for per ``GET /api/v1/events`` (the most it serves)."""


class EventsPruned(Exception):
    """The events right after the replica's position are gone: the replica is older than the
    organization's event retention. Load a new snapshot."""


@dataclass
class Replica:
    """Every user's access as of ``position``, the last event sequence taken into account."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    position: int = 0
    # The snapshot's pages, in order: the last user id of each (None for the
    # final page, which reaches to the end of the id order) and its position.
    page_ends: list[str] = field(default_factory=list)
    page_positions: list[int] = field(default_factory=list)
    final_page_position: int | None = None

    def add_page(self, page: dict[str, Any]) -> None:
        """Take one page of ``GET /api/v1/access``, pages in the order they were served."""
        position = int(page["position"])
        for user in page["users"]:
            self.users[user["id"]] = user["access"]
        if page["next_cursor"] is None:
            self.final_page_position = position
        else:
            self.page_ends.append(page["users"][-1]["id"])
            self.page_positions.append(position)
        # Events are read from the lowest page position on: a user on a page
        # read early may have changed while the later pages were read.
        self.position = min([*self.page_positions, position])

    def position_of(self, user_id: str) -> int:
        """The position of the page whose id range holds ``user_id``, present or not.

        Page k holds the ids after page k-1's last id up to its own last id;
        the final page holds every id after that. What the snapshot says of
        a user (their access, or their absence) is true at that position.
        """
        index = bisect.bisect_left(self.page_ends, user_id)
        if index < len(self.page_ends):
            return self.page_positions[index]
        assert self.final_page_position is not None, "the snapshot was not read to its end"
        return self.final_page_position

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one event of ``GET /api/v1/events`` (or a webhook delivery), in sequence order.

        Answers whether it was new to the replica: False for an event at or
        below the position already taken in (a duplicate delivery), and for
        a user's event at or below the position of the page that user was
        read on (the snapshot already holds it). Every other event is
        applied (a product reacts to it) exactly once.
        """
        sequence = int(event["sequence"])
        if sequence <= self.position:
            return False
        self.position = sequence
        data = event["data"] if isinstance(event["data"], dict) else {}
        user_id = data.get("user_id")
        if not isinstance(user_id, str):
            return True  # not about one user: the replica holds nothing of it
        if sequence <= self.position_of(user_id):
            return False
        if event["type"] == "access.changed":
            self.users[user_id] = data["access"]
        elif event["type"] == "user.deleted":
            self.users.pop(user_id, None)
        return True


def snapshot_pages(get: Get, limit: int = 500) -> Iterator[dict[str, Any]]:
    """Every page of ``GET /api/v1/access``, following ``next_cursor``."""
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = get("/access", params)
        yield page
        if page["next_cursor"] is None:
            return
        params = {"limit": limit, "cursor": page["next_cursor"]}


def load(get: Get, limit: int = 500) -> Replica:
    """A replica of the organization's access from a fresh snapshot, page by page."""
    replica = Replica()
    for page in snapshot_pages(get, limit):
        replica.add_page(page)
    return replica


def catch_up(
    get: Get, replica: Replica, on_event: Callable[[dict[str, Any]], None] | None = None
) -> int:
    """Apply every event after the replica's position; answers how many were new to it.

    An organization's events are numbered without gaps, so a first event
    beyond ``position + 1`` means the ones between were pruned: raises
    :class:`EventsPruned`.
    """
    applied = 0
    while True:
        page = get("/events", {"after": replica.position, "limit": EVENT_PAGE})
        for event in page["events"]:
            if int(event["sequence"]) > replica.position + 1:
                raise EventsPruned(
                    f"events {replica.position + 1}..{int(event['sequence']) - 1} were pruned"
                )
            if replica.apply(event):
                applied += 1
                if on_event is not None:
                    on_event(event)
        if len(page["events"]) < EVENT_PAGE:  # the last page: no need to ask for an empty one
            return applied


def http_get(url: str, token: str) -> Get:
    """:data:`Get` over HTTP with ``requests``; waits and retries when rate-limited."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    base = url.rstrip("/") + "/api/v1"

    def get(path: str, params: dict[str, Any]) -> Any:
        while True:
            response = session.get(base + path, params=params, timeout=30)
            if response.status_code == 429:
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            response.raise_for_status()
            return response.json()

    return get


def print_event(event: dict[str, Any]) -> None:
    print(event["sequence"], event["type"], event["subject"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the connector, e.g. http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="a credential of scope access")
    parser.add_argument("--limit", type=int, default=500, help="users per page (at most 1000)")
    parser.add_argument("--follow", type=float, metavar="SECONDS", help="then poll events")
    args = parser.parse_args(argv)
    get = http_get(args.url, args.token)
    replica = load(get, args.limit)
    applied = catch_up(get, replica)
    print(f"{len(replica.users)} users at position {replica.position} ({applied} events applied)")
    while args.follow:
        time.sleep(args.follow)
        try:
            catch_up(get, replica, print_event)
        except EventsPruned as gone:
            print(f"{gone}: loading a new snapshot")
            replica = load(get, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
