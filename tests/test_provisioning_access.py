"""Derived access through the real SCIM endpoints: leavers, rejoiners, renames, products,
the Viewer ceiling, onboarding, client domains, DELETE, mapping previews and the audit trail
(docs/rules.md).
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from connector.access.mapping import MappingError
from connector.admin.grants import complete_onboarding, grant_manual, revoke_manual
from connector.admin.health import health_report
from connector.admin.mappings import apply_mapping, current_mapping
from connector.db.engine import make_session_factory
from connector.derived.facts import UserNotFound
from connector.derived.tables import AccessSnapshot
from connector.directory.store import SqlBackend
from connector.directory.tables import ScimResource
from connector.errors import InvalidInput
from connector.trail.audit import AuditEntry
from connector.trail.events import Event
from scim.backend import ResourceKind
from tests.fixtures_app import ScimClient
from tests.scenarios import (
    OWNERS_MAPPING,
    PSA_CREATE,
    PSA_READ,
    USER_SCHEMA,
    Hub,
    Idp,
    Rule,
    mapping,
)


@pytest.fixture
def hub(hub: Hub) -> Hub:
    """IT has applied the Owners mapping and enabled PSA."""
    hub.apply(OWNERS_MAPPING)
    hub.product("psa", "active")
    return hub


def test_a_technician_gets_psa_from_the_group_with_the_rule_named(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada@msp.example")

    idp.group("PSA Technicians", [ada])

    access = hub.access("ADA@msp.example")
    assert (access["id"], access["userName"], access["role"]) == (ada, "ada@msp.example", "member")
    psa = access["products"]["psa"]
    assert (psa["roles"], psa["permissions"], psa["onboarding"]) == (
        ["technician"],
        [PSA_CREATE, PSA_READ],
        "pending",
    )
    assert psa["sources"][0]["rule"] == 2
    assert access["sources"][0]["type"] == "default_role"
    assert hub.may(ada, PSA_CREATE)


def test_a_leavers_access_is_gone_in_the_very_next_query(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    idp.group("PSA Technicians", [ada])

    idp.deactivate(ada)

    access = hub.access(ada)
    assert (access["active"], access["role"], access["products"]) == (False, None, {})
    assert not hub.may(ada, PSA_READ)
    assert hub.events("user.deactivated")[0].payload["end_sessions"] is True


def test_a_reactivated_user_gets_access_from_current_groups_only(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    technicians = idp.group("PSA Technicians", [ada])
    auditors = idp.group("Auditors")
    idp.deactivate(ada)
    idp.remove(technicians, ada)
    idp.add(auditors, ada)

    idp.reactivate(ada)

    access = hub.access(ada)
    assert (access["active"], access["role"], access["products"]) == (True, "viewer", {})


def test_a_renamed_group_keeps_its_rule(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    technicians = idp.group("PSA Technicians", [ada])

    idp.rename(technicians, "Service Desk")
    bob = idp.user("bob")
    idp.add(technicians, bob)

    assert hub.may(ada, PSA_CREATE)
    assert hub.may(bob, PSA_CREATE)
    unbound = hub.run(lambda s: health_report(s, hub.org_id)).unbound_rules
    assert [rule["group"] for rule in unbound] == ["Hub Owners", "Auditors"]


def test_a_group_pushed_after_the_mapping_binds_its_rule(
    idp: Idp, engine: Engine, org_id: int
) -> None:
    hub = Hub(engine, org_id)
    ada = idp.user("ada")
    idp.group("Hub Owners", [ada])
    hub.apply(OWNERS_MAPPING)  # binds "Hub Owners"; "PSA Technicians" matches no group yet
    assert hub.role(ada) == "owner"

    technicians = idp.group("Desk")
    idp.add(technicians, ada)
    assert hub.access(ada)["products"] == {}
    idp.rename(technicians, "psa technicians")

    assert "psa" in hub.access(ada)["dormant"]  # bound on rename; psa is not subscribed here
    assert hub.audit("mapping.rule_bound")[0].after["group_ref"] == "psa technicians"


def test_a_deleted_group_takes_its_grants_with_it(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    technicians = idp.group("PSA Technicians", [ada])

    idp.delete_group(technicians)

    assert hub.access(ada)["products"] == {}
    unbound = hub.run(lambda s: health_report(s, hub.org_id)).unbound_rules
    assert "PSA Technicians" in [rule["group"] for rule in unbound]


def test_a_product_switched_to_not_subscribed_and_back(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    idp.group("PSA Technicians", [ada])

    changes = hub.product("psa", "not_subscribed")

    assert [change.user_id for change in changes] == [ada]
    access = hub.access(ada)
    assert access["products"] == {}
    assert access["dormant"]["psa"]["permissions"] == [
        PSA_CREATE,
        PSA_READ,
    ]
    assert not hub.may(ada, PSA_READ)
    assert hub.run(lambda s: health_report(s, hub.org_id)).dormant[0].users == 1

    hub.product("psa", "trial")

    assert hub.may(ada, PSA_CREATE)
    assert hub.access(ada)["dormant"] == {}


def test_owners_get_every_enabled_product(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    idp.group("Hub Owners", [ada])
    assert sorted(hub.access(ada)["products"]) == ["psa"]

    hub.product("rmm", "active")

    assert sorted(hub.access(ada)["products"]) == ["psa", "rmm"]
    assert hub.may(ada, "rmm.scripts.run")


def test_a_viewer_with_write_permissions_in_its_grants_keeps_only_read(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    idp.group("PSA Technicians", [ada])

    idp.group("Auditors", [ada])

    psa = hub.access(ada)["products"]["psa"]
    assert (psa["permissions"], psa["withheld"]) == ([PSA_READ], [PSA_CREATE])
    assert hub.may(ada, PSA_READ)
    assert not hub.may(ada, PSA_CREATE)


def test_manual_grants_add_to_the_mapping_and_revoke_leaves_it(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    idp.group("PSA Technicians", [ada])

    hub.run(
        lambda s: grant_manual(
            s, hub.org_id, "ada", "psa", ["dispatcher"], ["psa.tickets.update"], actor="cli:it"
        )
    )
    assert hub.may(ada, "psa.tickets.update")
    assert hub.access(ada)["products"]["psa"]["roles"] == ["dispatcher", "technician"]

    revoked = hub.run(lambda s: revoke_manual(s, hub.org_id, ada, "psa", actor="cli:it"))

    assert revoked
    assert not hub.may(ada, "psa.tickets.update")
    assert hub.may(ada, PSA_CREATE)
    assert [e.action for e in hub.audit() if e.action.startswith("grant.")] == [
        "grant.manual_granted",
        "grant.manual_revoked",
    ]


def test_a_manual_grant_of_client_access_is_refused(idp: Idp, hub: Hub) -> None:
    idp.user("ada")

    with pytest.raises(InvalidInput, match="client access"):
        hub.run(
            lambda s: grant_manual(s, hub.org_id, "ada", "psa", ["portal_contact"], [], actor="it")
        )
    with pytest.raises(UserNotFound):
        hub.run(lambda s: grant_manual(s, hub.org_id, "nobody", "psa", [], [PSA_READ], actor="it"))


def test_onboarding_shows_once_and_survives_deactivation(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada")
    idp.group("PSA Technicians", [ada])

    first = hub.run(lambda s: complete_onboarding(s, hub.org_id, ada, "psa", actor="product:psa"))
    again = hub.run(lambda s: complete_onboarding(s, hub.org_id, ada, "psa", actor="product:psa"))
    idp.deactivate(ada)
    idp.reactivate(ada)

    assert (first, again) == (True, False)
    assert hub.access(ada)["products"]["psa"]["onboarding"] == "done"
    assert len(hub.audit("onboarding.completed")) == 1


def test_a_client_domain_user_is_refused_and_nothing_is_stored(
    idp: Idp, hub: Hub, scim: ScimClient
) -> None:
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "pat@msp.example",
        "emails": [{"value": "Pat@Clients.Example.com", "type": "work"}],
    }

    response = scim.post("/Users", json=body)

    assert response.status_code == 400
    error = response.get_json()
    assert error["scimType"] == "invalidValue"
    assert "Portal" in error["detail"]
    assert "clients.example.com" in error["detail"]
    assert (
        hub.run(
            lambda s: s.scalar(
                select(func.count())
                .select_from(ScimResource)
                .where(ScimResource.org_id == hub.org_id)
            )
        )
        == 0
    )
    assert hub.audit("user.created") == []


def test_a_client_address_cannot_be_patched_onto_a_staff_user(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada@msp.example")

    response = idp.scim.patch(
        f"/Users/{ada}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "userName", "value": "ada@clients.example.com"}
            ],
        },
    )

    assert response.status_code == 400
    assert hub.access(ada)["userName"] == "ada@msp.example"


def test_delete_keeps_the_audit_trail_and_the_username_can_return(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada@msp.example")
    idp.group("PSA Technicians", [ada])

    idp.delete_user(ada)

    with pytest.raises(UserNotFound):
        hub.access("ada@msp.example")
    assert [e.action for e in hub.audit() if e.target == f"user:{ada}"][-2:] == [
        "user.deleted",
        "access.changed",
    ]
    assert hub.run(lambda s: s.get(AccessSnapshot, ada)) is None

    again = idp.user("ada@msp.example")

    assert again != ada
    assert hub.access("ada@msp.example")["products"] == {}
    assert any(e.target == f"user:{ada}" for e in hub.audit())


def test_a_dry_run_previews_and_changes_nothing(idp: Idp, engine: Engine, org_id: int) -> None:
    hub = Hub(engine, org_id)
    ada, bob, cy = idp.user("ada"), idp.user("bob"), idp.user("cy@clients.example.com")
    idp.group("Hub Owners", [ada, bob, cy])
    # This organization's rows only: earlier tests of the worker share the database.
    audits = select(func.count()).select_from(AuditEntry).where(AuditEntry.org_id == org_id)
    events = select(func.count()).select_from(Event).where(Event.org_id == org_id)
    audit_before = hub.run(lambda s: s.scalar(audits))
    events_before = hub.run(lambda s: s.scalar(events))

    preview = hub.apply(OWNERS_MAPPING, dry_run=True)

    assert {change.user_id for change in preview.changes} == {ada, bob, cy}
    assert [held["user_id"] for held in preview.held] == [cy]
    assert [rule.group for rule in preview.unmatched_rules] == ["PSA Technicians", "Auditors"]
    assert preview.client_domain_users == ("cy@clients.example.com",)
    text = preview.to_text()
    assert "Dry run" in text
    assert "role member -> owner" in text
    assert "Held as a third Owner" in text
    assert preview.to_json()["changed_users"] == 3
    assert hub.run(lambda s: current_mapping(s, org_id)) is None
    assert (hub.seats(), hub.role(ada)) == ([], "member")
    assert hub.run(lambda s: s.scalar(audits)) == audit_before
    assert hub.run(lambda s: s.scalar(events)) == events_before

    applied = hub.apply(OWNERS_MAPPING)

    assert applied.applied
    assert hub.seats() == [ada, bob]
    assert hub.held() == [cy]
    assert hub.run(lambda s: current_mapping(s, org_id)) == OWNERS_MAPPING
    assert hub.audit("mapping.applied")[0].actor == "cli:it"


def test_a_bad_mapping_is_refused_whole_and_nothing_changes(engine: Engine, org_id: int) -> None:
    hub = Hub(engine, org_id)

    with pytest.raises(MappingError, match=r"team.toml:3"):
        hub.run(
            lambda s: apply_mapping(
                s,
                org_id,
                '[[rules]]\ngroup = "X"\nrole = "boss"\n',
                actor="it",
                dry_run=False,
                source_name="team.toml",
            )
        )
    assert hub.run(lambda s: current_mapping(s, org_id)) is None


def test_audit_entries_carry_the_request_and_the_rule_behind_a_role_change(
    idp: Idp, hub: Hub, scim_token: str
) -> None:
    ada = idp.user("ada")
    owners = idp.group("Hub Owners")

    idp.add(owners, ada)

    change = [e for e in hub.audit("access.changed") if e.target == f"user:{ada}"][-1]
    assert (change.before["role"], change.after["role"]) == ("member", "owner")
    assert change.reason.startswith(
        f'PATCH /scim/v2/Groups/{owners}; via rule 1 (group "Hub Owners")'
    )
    assert change.actor.startswith("scim:")
    members = hub.audit("group.members_changed")[-1]
    assert members.after == {"added": [ada], "removed": []}
    assert [event.subject for event in hub.events("access.changed")][-1] == ada
    assert hub.events("access.changed")[-1].payload["access"]["role"] == "owner"


def test_a_profile_update_is_audited_without_recomputing(idp: Idp, hub: Hub) -> None:
    ada = idp.user("ada", name={"givenName": "Ada"})
    changes_before = len(hub.audit("access.changed"))

    idp.patch(
        f"/Users/{ada}", {"op": "replace", "path": "name.givenName", "value": "Augusta"}, status=200
    )

    replaced = hub.audit("user.replaced")[-1]
    assert replaced.before == {"name": {"givenName": "Ada"}}
    assert replaced.after == {"name": {"givenName": "Augusta"}}
    assert len(hub.audit("access.changed")) == changes_before


def test_a_user_stored_before_derivation_was_on_gets_the_default_role(
    engine: Engine, org_id: int, hub: Hub
) -> None:
    with make_session_factory(engine)() as session:
        stored = SqlBackend(session, org_id).create(
            ResourceKind.USER, {"schemas": [USER_SCHEMA], "userName": "old@msp.example"}
        )
        session.commit()

    access = hub.access("old@msp.example")

    assert (access["id"], access["role"], access["sources"][0]["type"]) == (
        stored.id,
        "member",
        "default_role",
    )
    assert hub.run(lambda s: s.get(AccessSnapshot, stored.id)) is None


def test_entra_app_role_grants_follow_the_product_state(
    idp: Idp, engine: Engine, org_id: int
) -> None:
    hub = Hub(engine, org_id)
    hub.apply(
        'map_scim_roles = true\n\n[[rules]]\nscim_role = "Hub.Technician"\nproduct = "psa"\n'
        'permissions = ["psa.tickets.read"]\n'
    )
    ada = idp.user("ada", roles=[{"value": "hub.technician", "primary": "True"}])
    assert "psa" in hub.access(ada)["dormant"]
    assert hub.run(lambda s: health_report(s, hub.org_id)).dormant[0].users == 1

    changes = hub.product("psa", "active")

    assert [change.user_id for change in changes] == [ada]
    assert hub.may(ada, PSA_READ)


def test_a_group_put_that_renames_onto_a_rule_and_replaces_members(
    idp: Idp, hub: Hub, scim: ScimClient
) -> None:
    ada, bob = idp.user("ada"), idp.user("bob")
    desk = idp.group("Desk", [ada])

    response = scim.put(
        f"/Groups/{desk}",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "PSA Technicians",
            "members": [{"value": bob}],
        },
    )

    assert response.status_code == 200
    assert hub.access(ada)["products"] == {}
    assert hub.may(bob, PSA_CREATE)


def test_an_okta_bulk_push_derives_access_for_each_operation(
    idp: Idp, hub: Hub, scim: ScimClient
) -> None:
    bulk = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "ada",
                "data": {"schemas": [USER_SCHEMA], "userName": "ada"},
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "pat",
                "data": {"schemas": [USER_SCHEMA], "userName": "pat@clients.example.com"},
            },
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "desk",
                "data": {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "PSA Technicians",
                    "members": [{"value": "bulkId:ada"}],
                },
            },
        ],
    }

    response = scim.post("/Bulk", json=bulk)

    statuses = [str(op["status"]) for op in response.get_json()["Operations"]]
    assert statuses == ["201", "400", "201"]
    assert hub.may("ada", PSA_CREATE)
    assert [e.reason for e in hub.audit("user.created")] == ["POST /scim/v2/Bulk"]


def test_the_health_report_names_what_needs_attention(idp: Idp, hub: Hub) -> None:
    ada, bob, cy = idp.user("ada"), idp.user("bob"), idp.user("cy")
    idp.group("Hub Owners", [ada, bob, cy])
    idp.group("PSA Technicians", [ada])
    hub.product("psa", "not_subscribed")

    report = hub.run(lambda s: health_report(s, hub.org_id))

    data = report.to_json()
    assert [held["user_id"] for held in data["held"]] == [cy]
    assert data["held"][0]["position"] == 1
    assert data["without_owner"] is False
    assert data["dormant_grants"] == [
        {
            "product": "psa",
            "state": "not_subscribed",
            "source": 'rule 2 "PSA technicians" (group "PSA Technicians")',
            "users": 1,
        }
    ]
    assert [rule["group"] for rule in data["unbound_rules"]] == ["Auditors"]
    text = report.to_text()
    assert "Held third Owner #1: cy" in text
    assert "Dormant:" in text


def test_a_bound_group_deleted_and_pushed_again_binds_its_rule_again(idp: Idp, hub: Hub) -> None:
    """Okta deletes "Service Desk" and pushes it anew: its members get the rule's role again."""
    hub.apply(mapping(Rule(group="Service Desk", role="admin")))
    ada = idp.user("ada@msp.example")
    first = idp.group("Service Desk", [ada])
    assert hub.role(ada) == "admin"

    idp.delete_group(first)
    assert hub.role(ada) == "member"
    again = idp.group("Service Desk")
    idp.add(again, ada)

    assert hub.role(ada) == "admin"
