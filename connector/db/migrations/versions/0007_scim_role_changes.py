"""scim_role_changes: whether an organization's IdP ever took a SCIM role away

One row per organization and kind of change (``added``, ``taken_away``): the
first user write that changed a user's ``roles`` that way
(connector/trail/role_changes.py). The health report warns when roles were
only ever added.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scim_role_changes",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("change", sa.String(length=20), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_scim_role_changes_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "change", name=op.f("pk_scim_role_changes")),
    )


def downgrade() -> None:
    op.drop_table("scim_role_changes")
