"""Before and after of a user's access, as the audit trail and the mapping preview show it."""

from __future__ import annotations

import dataclasses
import json

from connector.access.catalog import ProductState
from connector.access.changes import access_change, effective
from connector.access.derive import AccessContext, DerivedAccess, UserFacts, derive_access
from connector.access.mapping import GroupRef, bind_rules, parse_mapping

MAPPING = """\
[[rules]]
group = "Hub Admins"
role = "admin"

[[rules]]
group = "PSA Technicians"
product = "psa"
permissions = ["psa.tickets.read", "psa.tickets.create"]
"""
GROUPS = [GroupRef("g-adm", None, "Hub Admins"), GroupRef("g-psa", None, "PSA Technicians")]


def access(*group_ids: str, active: bool = True, text: str = MAPPING) -> DerivedAccess:
    config = parse_mapping(text)
    context = AccessContext(config, bind_rules(config, GROUPS).by_key, {"psa": ProductState.ACTIVE})
    return derive_access(UserFacts("u1", active, frozenset(group_ids)), context)


def test_nothing_changed() -> None:
    assert access_change(access("g-psa"), access("g-psa")) is None


def test_joining_an_admin_group_changes_the_role_because_of_its_rule() -> None:
    change = access_change(access("g-psa"), access("g-psa", "g-adm"))
    assert change is not None
    assert change.before == {"role": "member"}
    assert change.after == {"role": "admin"}
    assert [source.rule for source in change.causes] == [1]


def test_leaving_a_product_group_names_the_rule_that_no_longer_applies() -> None:
    change = access_change(access("g-psa"), access())
    assert change is not None
    assert change.after == {"products": {}}
    assert change.before["products"]["psa"]["permissions"] == [
        "psa.tickets.create",
        "psa.tickets.read",
    ]
    assert [source.rule for source in change.causes] == [2]


def test_deactivation_is_one_change_of_everything() -> None:
    change = access_change(access("g-adm", "g-psa"), access("g-adm", "g-psa", active=False))
    assert change is not None
    assert set(change.after) == {"active", "role", "products"}
    assert change.after["role"] is None
    # The request is the cause; the sources name the grants it suspended.
    assert [source.rule for source in change.causes] == [2]


def test_a_new_user_changes_from_nothing() -> None:
    change = access_change(None, access("g-psa"))
    assert change is not None
    assert change.before["role"] is None
    assert json.loads(json.dumps(change.to_json()))["after"]["role"] == "member"


def test_a_renumbered_rule_is_not_a_change_of_access() -> None:
    reordered = MAPPING.split("\n\n")[1] + "\n\n" + MAPPING.split("\n\n")[0] + "\n"
    assert access_change(access("g-psa", "g-adm"), access("g-psa", "g-adm", text=reordered)) is None


def test_being_held_is_a_change() -> None:
    before = access("g-adm")
    assert effective(before)["held"] is False
    change = access_change(before, dataclasses.replace(before, held=True))
    assert change is not None
    assert change.after == {"held": True}
    assert [source.rule for source in change.causes] == [1]
