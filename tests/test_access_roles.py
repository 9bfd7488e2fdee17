"""The platform roles and the IT-facing permission matrix, checked against docs/rules.md's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.access.roles import PERMISSION_MATRIX, ItAction, Role, matrix_to_json, may

RULES = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def documented_matrix() -> list[str]:
    """The table lines of the "Roles and permission matrix" section of docs/rules.md."""
    section = RULES.read_text(encoding="utf-8").split("\n## Roles and permission matrix\n")[1]
    section = section.split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def documented_rows() -> list[tuple[Role, ItAction, bool]]:
    lines = [line.strip().strip("|").split("|") for line in documented_matrix()]
    header = [cell.strip() for cell in lines[0]]
    actions = header[1:-1]  # between the role and the scope
    rows = []
    for cells in lines[2:]:
        cells = [cell.strip() for cell in cells]
        role = Role.parse(cells[0])
        for column, cell in zip(actions, cells[1:-1], strict=True):
            rows.append((role, ItAction.parse(column), cell == "Yes"))
    return rows


def test_the_documented_table_names_every_role_and_action() -> None:
    rows = documented_rows()
    assert {role for role, _, _ in rows} == set(Role)
    assert {action for _, action, _ in rows} == set(ItAction)
    assert len(rows) == len(Role) * len(ItAction)


@pytest.mark.parametrize(("role", "action", "allowed"), documented_rows())
def test_the_documented_table_row_for_row(role: Role, action: ItAction, allowed: bool) -> None:
    assert may(role, action) is allowed


def test_only_owners_export_the_audit_log() -> None:
    # Admins view the audit log but do not export it (docs/rules.md#audit).
    assert [role for role in Role if may(role, ItAction.EXPORT_AUDIT)] == [Role.OWNER]
    assert may(Role.ADMIN, ItAction.VIEW_AUDIT)


def test_only_owners_enable_products() -> None:
    # Only Owners add or remove products from the organization's subscription.
    assert [role for role in Role if may(role, ItAction.ENABLE_PRODUCTS)] == [Role.OWNER]


def test_owners_and_admins_grant_product_access() -> None:
    # Owners and Admins grant product access to individual users.
    allowed = {role for role in Role if may(role, ItAction.GRANT_PRODUCT_ACCESS)}
    assert allowed == {Role.OWNER, Role.ADMIN}


def test_members_and_viewers_take_no_it_action() -> None:
    assert PERMISSION_MATRIX[Role.MEMBER] == PERMISSION_MATRIX[Role.VIEWER] == frozenset()


def test_an_inactive_user_takes_no_it_action() -> None:
    assert not any(may(None, action) for action in ItAction)


def test_roles_are_ordered_by_power() -> None:
    assert Role.VIEWER < Role.MEMBER < Role.ADMIN < Role.OWNER
    assert max([Role.MEMBER, Role.OWNER, Role.VIEWER]) is Role.OWNER
    assert sorted(Role) == [Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER]


@pytest.mark.parametrize("text", ["owner", "Owner", "OWNER", " owner "])
def test_roles_parse_case_insensitively(text: str) -> None:
    assert Role.parse(text) is Role.OWNER


def test_an_unknown_role_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r'unknown role "boss".*owner, admin, member, viewer'):
        Role.parse("boss")


def test_actions_parse_as_hub_writes_them() -> None:
    assert ItAction.parse("Manage Users") is ItAction.MANAGE_USERS
    assert ItAction.parse("export-audit") is ItAction.EXPORT_AUDIT
    with pytest.raises(ValueError, match="unknown action"):
        ItAction.parse("launch missiles")


def test_the_matrix_prints_as_json() -> None:
    printed = matrix_to_json()
    assert list(printed) == ["owner", "admin", "member", "viewer"]
    assert printed["admin"] == [
        "grant_product_access",
        "manage_users",
        "view_audit",
        "view_connection",
        "view_health",
        "view_mapping",
        "view_products",
    ]
    assert printed["viewer"] == []
