"""owner seats, holds and access snapshots outlive their user's row

The store deletes a user's row before the access engine hears of it; the
engine reads the seat, queue place and last access then, and deletes them
itself (connector/derived/tables.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("owner_seats", "owner_holds", "access_snapshots")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_user_id_scim_resources", type_="foreignkey")


def downgrade() -> None:
    for table in _TABLES:
        # Rows of users deleted meanwhile would break the restored key.
        rows = sa.table(table, sa.column("user_id"))
        resources = sa.table("scim_resources", sa.column("id"))
        op.execute(sa.delete(rows).where(rows.c.user_id.not_in(sa.select(resources.c.id))))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                f"fk_{table}_user_id_scim_resources",
                "scim_resources",
                ["user_id"],
                ["id"],
                ondelete="CASCADE",
            )
