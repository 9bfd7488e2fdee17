"""Events numbered per organization; webhook secret rotation; dead-lettered deliveries

- ``events.sequence``: an organization's own count, so a product cannot
  count another organization's changes. Existing events keep their old
  global id as their sequence, so a poller's saved ``after=`` cursor still
  points where it did; ``event_counters`` starts each organization at its
  highest one. ``ux_events_org_id_sequence`` replaces ``ix_events_org_id_id``.
- ``event_endpoints.previous_secret`` / ``previous_secret_expires_at``: the
  secret that keeps signing during a rotation's grace period.
- ``event_deliveries.dead_at``: a delivery given up after too many attempts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_counters",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_event_counters_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_event_counters")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sequence", sa.Integer(), nullable=True))
    op.execute("UPDATE events SET sequence = id")
    op.execute(
        "INSERT INTO event_counters (org_id, last_sequence) "
        "SELECT org_id, MAX(sequence) FROM events GROUP BY org_id"
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("sequence", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index("ix_events_org_id_id")
        batch_op.create_index("ux_events_org_id_sequence", ["org_id", "sequence"], unique=True)

    with op.batch_alter_table("event_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.drop_column("dead_at")
    with op.batch_alter_table("event_endpoints", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ux_events_org_id_sequence")
        batch_op.create_index("ix_events_org_id_id", ["org_id", "id"], unique=False)
        batch_op.drop_column("sequence")
    op.drop_table("event_counters")
