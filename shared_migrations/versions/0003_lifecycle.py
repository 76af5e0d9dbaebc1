"""shared: tenant lifecycle (cancel returns to the previous status; PII-free tombstones)

Revision ID: 0003_lifecycle
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_lifecycle"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "shared"
TOMBSTONE_RULE = "status <> 'deleted' OR (name = '' AND slug = 'deleted-' || replace(id::text, '-', ''))"


def upgrade() -> None:
    op.add_column("tenants", sa.Column("deletion_previous_status", sa.Text()), schema=S)
    # op.f(): the names are final, the metadata's naming convention must not prefix them again.
    op.create_check_constraint(
        op.f("ck_tenants_deletion_previous_status"),
        "tenants",
        "deletion_previous_status IN ('provisioning','active','disabled')",
        schema=S,
    )
    # Tombstones written before this revision (none exist in practice) are made PII-free
    # first, so the constraint can be validated.
    op.execute(
        "UPDATE shared.tenants SET name = '', slug = 'deleted-' || replace(id::text, '-', '') "
        "WHERE status = 'deleted'"
    )
    op.create_check_constraint(op.f("ck_tenants_tombstone"), "tenants", TOMBSTONE_RULE, schema=S)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_tenants_tombstone"), "tenants", schema=S)
    op.drop_constraint(op.f("ck_tenants_deletion_previous_status"), "tenants", schema=S)
    op.drop_column("tenants", "deletion_previous_status", schema=S)
