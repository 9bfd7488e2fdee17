"""retention_settings: how long each organization keeps its audit trail, events and log

One row per organization that set its own periods (``hub-scim retention
set``); a NULL period takes the service's default (connector/trail/retention.py).
Pruning walks the indexes the trail's tables already have, ``(org_id, id)``
and events' ``(org_id, sequence)``, so no index is added.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retention_settings",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("audit_days", sa.Integer(), nullable=True),
        sa.Column("event_days", sa.Integer(), nullable=True),
        sa.Column("request_log_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_retention_settings_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_retention_settings")),
    )


def downgrade() -> None:
    op.drop_table("retention_settings")
