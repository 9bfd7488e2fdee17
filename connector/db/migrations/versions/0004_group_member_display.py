"""group_members.display: the member label the IdP sent

RFC 7643 section 4.2 ``members.display`` is a client-writable label; the
store keeps it and shows it, else the user's displayName or userName
(connector/directory/tables.py). Nullable and without a default, so adding it
rewrites no row on PostgreSQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_column("display")
