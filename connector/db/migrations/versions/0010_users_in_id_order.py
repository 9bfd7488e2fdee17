"""ix_scim_resources_kind_id: a tenant's users in id order

``GET /api/v1/access`` pages through every user of an organization by id
(keyset, ``id > :after``); this index makes each page a range scan of the
tenant's own rows (connector/derived/roster.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scim_resources", schema=None) as batch_op:
        batch_op.create_index("ix_scim_resources_kind_id", ["org_id", "kind", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scim_resources", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_resources_kind_id")
