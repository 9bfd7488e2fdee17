"""The platform roles and the IT-facing permission matrix, checked against the seeds' own table."""

from __future__ import annotations

import pytest

from connector.access.roles import PERMISSION_MATRIX, ItAction, Role, matrix_to_json, may

# Verbatim from seeds/org-roles.txt, "The Four Roles".
SEED_TABLE = """\
| Role | Manage Users | Manage Roles | View Billing | View Audit | Scope |
|---|---|---|---|---|---|
| Owner | Yes | Yes | Yes | Yes | Unrestricted — full control over all settings and products |
| Admin | Yes | No | No | Yes | User management and product access, no billing or role definitions |
| Member | No | No | No | No | Access to assigned products only, with product-specific permissions |
| Viewer | No | No | No | No | Read-only access across assigned products |
"""


def seed_rows() -> list[tuple[Role, ItAction, bool]]:
    lines = [line.strip().strip("|").split("|") for line in SEED_TABLE.splitlines()]
    header = [cell.strip() for cell in lines[0]]
    rows = []
    for cells in lines[2:]:
        cells = [cell.strip() for cell in cells]
        role = Role.parse(cells[0])
        for column, cell in zip(header[1:5], cells[1:5], strict=True):
            rows.append((role, ItAction.parse(column), cell == "Yes"))
    return rows


@pytest.mark.parametrize(("role", "action", "allowed"), seed_rows())
def test_the_seed_table_row_for_row(role: Role, action: ItAction, allowed: bool) -> None:
    assert may(role, action) is allowed


def test_only_owners_export_the_audit_log() -> None:
    # Admin "Can view (but not export) the audit log"; DESIGN.md rule 11.
    assert [role for role in Role if may(role, ItAction.EXPORT_AUDIT)] == [Role.OWNER]
    assert may(Role.ADMIN, ItAction.VIEW_AUDIT)


def test_only_owners_enable_products() -> None:
    # "Only Owners can add or remove products from the organization's subscription."
    assert [role for role in Role if may(role, ItAction.ENABLE_PRODUCTS)] == [Role.OWNER]


def test_owners_and_admins_grant_product_access() -> None:
    # "Admins and Owners can grant access to individual users"; "products.* (Owner or Admin)".
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


def test_actions_parse_as_the_seeds_write_them() -> None:
    assert ItAction.parse("Manage Users") is ItAction.MANAGE_USERS
    assert ItAction.parse("export-audit") is ItAction.EXPORT_AUDIT
    with pytest.raises(ValueError, match="unknown action"):
        ItAction.parse("launch missiles")


def test_the_matrix_prints_as_json() -> None:
    printed = matrix_to_json()
    assert list(printed) == ["owner", "admin", "member", "viewer"]
    assert printed["admin"] == ["grant_product_access", "manage_users", "view_audit"]
    assert printed["viewer"] == []
