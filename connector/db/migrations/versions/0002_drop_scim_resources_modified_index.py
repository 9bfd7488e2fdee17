"""drop ix_scim_resources_modified

Every write bumps ``modified_at``; without an index on it, PostgreSQL updates
the row in place (HOT), so member batches no longer slow down as a group
grows (connector/directory/tables.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scim_resources", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_resources_modified")


def downgrade() -> None:
    with op.batch_alter_table("scim_resources", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scim_resources_modified", ["org_id", "kind", "modified_at"], unique=False
        )
