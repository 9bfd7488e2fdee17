"""The two-Owner cap through the real SCIM endpoints.

docs/rules.md#owner-cap and #last-owner.

Okta and Entra push "Hub Owners"; the access the service derives, the seats
it stores, and the audit trail show what happened.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from connector.admin.health import health_report
from connector.db.base import utcnow
from connector.db.engine import make_session_factory
from connector.derived.tables import OwnerSeat
from tests.scenarios import OWNERS_MAPPING, Hub, Idp


@pytest.fixture
def hub(hub: Hub) -> Hub:
    """IT has applied the Owners mapping."""
    hub.apply(OWNERS_MAPPING)
    return hub


def test_three_users_pushed_into_hub_owners_two_seated_one_held(idp: Idp, hub: Hub) -> None:
    ada, bob, cy = (
        idp.user("ada@msp.example"),
        idp.user("bob@msp.example"),
        idp.user("cy@msp.example"),
    )

    idp.group("Hub Owners", [ada, bob, cy])

    assert hub.seats() == [ada, bob]
    assert hub.held() == [cy]
    assert hub.role(ada) == hub.role(bob) == "owner"
    held = hub.access(cy)
    assert (held["role"], held["held"]) == ("admin", True)
    assert [e.action for e in hub.audit() if e.action.startswith("owner.")] == [
        "owner.seated",
        "owner.seated",
        "owner.held",
    ]


def test_the_held_owner_is_seated_when_an_owner_is_deactivated(idp: Idp, hub: Hub) -> None:
    ada, bob, cy = idp.user("ada"), idp.user("bob"), idp.user("cy")
    idp.group("Hub Owners", [ada, bob, cy])

    idp.deactivate(ada)

    assert hub.seats() == [cy, bob]  # cy takes ada's seat, number 1
    assert hub.held() == []
    assert hub.access(ada)["role"] is None
    assert (hub.role(cy), hub.access(cy)["held"]) == ("owner", False)
    seated = hub.audit("owner.seated")[-1]
    assert seated.target == f"user:{cy}"
    assert seated.reason.startswith("PATCH /scim/v2/Users/")
    assert [event.subject for event in hub.events("user.deactivated")] == [ada]
    assert hub.events("user.deactivated")[0].payload["end_sessions"] is True


def test_one_patch_that_removes_owner_a_and_adds_c_seats_c(idp: Idp, hub: Hub) -> None:
    ada, bob, cy = idp.user("ada"), idp.user("bob"), idp.user("cy")
    owners = idp.group("Hub Owners", [ada, bob])

    idp.patch(
        f"/Groups/{owners}",
        {"op": "remove", "path": f'members[value eq "{ada}"]'},
        {"op": "add", "path": "members", "value": [{"value": cy}]},
    )

    assert hub.seats() == [cy, bob]
    assert hub.held() == []
    assert (hub.role(ada), hub.role(cy)) == ("member", "owner")


def test_the_last_owner_leaving_the_group_stays_owner_flagged(idp: Idp, hub: Hub) -> None:
    ada, bob = idp.user("ada"), idp.user("bob")
    owners = idp.group("Hub Owners", [ada])

    idp.remove(owners, ada)

    access = hub.access(ada)
    assert (access["role"], access["kept_as_last_owner"]) == ("owner", True)
    assert hub.audit("owner.kept_as_last")
    report = hub.run(lambda s: health_report(s, hub.org_id))
    assert not report.healthy
    assert report.kept_as_last == (ada,)

    idp.add(owners, bob)

    assert hub.seats() == [bob]
    assert (hub.role(ada), hub.role(bob)) == ("member", "owner")


def test_a_last_owner_deactivated_leaves_the_org_without_owner_loudly(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    idp.group("Hub Owners", [ada])

    idp.deactivate(ada)

    assert hub.seats() == []
    assert hub.audit("org.without_owner")


def test_deleting_a_seated_owner_frees_the_seat_for_the_queue(idp: Idp, hub: Hub) -> None:
    ada, bob, cy = idp.user("ada"), idp.user("bob"), idp.user("cy")
    idp.group("Hub Owners", [ada, bob, cy])

    idp.delete_user(bob)

    assert hub.seats() == [ada, cy]
    assert hub.audit("owner.unseated")[-1].target == f"user:{bob}"
    lost = [e for e in hub.audit("access.changed") if e.target == f"user:{bob}"][-1]
    assert lost.before["role"] == "owner"
    assert lost.after["role"] is None
    assert hub.events("user.deleted")[0].payload == {
        "user_id": bob,
        "userName": "bob",
        "end_sessions": True,
    }


def test_a_reactivated_owner_queues_behind_those_already_waiting(idp: Idp, hub: Hub) -> None:
    ada, bob, cy, dee = (idp.user(name) for name in ("ada", "bob", "cy", "dee"))
    idp.group("Hub Owners", [ada, bob, cy, dee])
    assert (hub.seats(), hub.held()) == ([ada, bob], [cy, dee])

    idp.deactivate(ada)
    idp.reactivate(ada)

    assert (hub.seats(), hub.held()) == ([cy, bob], [dee, ada])


def test_entra_app_roles_map_to_owner_under_the_same_cap(
    idp: Idp, engine: Engine, org_id: int
) -> None:
    hub = Hub(engine, org_id)
    hub.apply(
        'map_scim_roles = true\n\n[[rules]]\nscim_role = "Hub.Owner"\nrole = "owner"\n\n'
        '[[rules]]\nscim_role = "Hub.Admin"\nrole = "admin"\n'
    )
    owner_role = [
        {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "value": "Hub.Owner"}
    ]

    ada = idp.user("ada@msp.example", roles=owner_role)
    bob = idp.user("bob@msp.example", roles=owner_role)
    cy = idp.user("cy@msp.example", roles=[{"value": "Hub.Admin"}])
    idp.patch(f"/Users/{cy}", {"op": "Add", "path": "roles", "value": owner_role}, status=200)

    assert hub.seats() == [ada, bob]
    assert hub.held() == [cy]
    assert hub.access(cy)["held"] is True

    idp.patch(f"/Users/{ada}", {"op": "Remove", "path": "roles"}, status=200)

    assert hub.seats() == [cy, bob]
    assert hub.role(ada) == "member"


def test_entra_app_roles_are_ignored_unless_the_org_maps_them(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada", roles=[{"value": "owner"}])

    assert hub.role(ada) == "member"
    assert hub.seats() == []


def test_the_schema_refuses_a_third_seat_whatever_the_code_does(
    engine: Engine, org_id: int, idp: Idp
) -> None:
    users = [idp.user(name) for name in ("ada", "bob", "cy")]
    with make_session_factory(engine)() as session:
        rows = [
            {
                "org_id": org_id,
                "seat": seat,
                "user_id": user,
                "seated_at": utcnow(),
                "kept_as_last": False,
            }
            for seat, user in zip((1, 2, 3), users, strict=True)
        ]
        with pytest.raises(IntegrityError):
            session.execute(insert(OwnerSeat), rows)
        session.rollback()
