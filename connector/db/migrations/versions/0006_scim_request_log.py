"""scim_request_log: the provisioning log of every organization's SCIM requests

One row per SCIM request an organization's IdP made (connector/trail/request_log.py),
written outside the request's transaction and pruned after the retention.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scim_request_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("credential_id", sa.String(length=36), nullable=True),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("scim_type", sa.String(length=50), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("resource_kind", sa.String(length=10), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("idp_request_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_scim_request_log_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_request_log")),
    )
    with op.batch_alter_table("scim_request_log", schema=None) as batch_op:
        batch_op.create_index("ix_scim_request_log_org_id_id", ["org_id", "id"], unique=False)
        batch_op.create_index(
            "ix_scim_request_log_org_resource", ["org_id", "resource_id", "id"], unique=False
        )
        batch_op.create_index("ix_scim_request_log_at", ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scim_request_log", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_request_log_at")
        batch_op.drop_index("ix_scim_request_log_org_resource")
        batch_op.drop_index("ix_scim_request_log_org_id_id")
    op.drop_table("scim_request_log")
